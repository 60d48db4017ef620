//! The sans-IO Jingle session manager.
//!
//! Inputs: [`SessionManager::handle_iq`] (or [`SessionManager::handle_xml`]) with every
//! Jingle IQ the signaling channel delivers, [`SessionManager::handle_timeout`] when
//! [`SessionManager::poll_timeout`] says so. Commands (`start`, `accept`, `end`, ...) only
//! queue work. Outputs: [`SessionManager::poll_transmit`] (IQs to send) and
//! [`SessionManager::poll_event`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use huddle_jingle::{
    Action, Codec, Content, Element, ErrorType, Iq, IqType, Jid, Jingle, JingleErrorCondition,
    Known, ParseError, Reason, ReasonCondition, SessionInfo, Sid, StanzaError,
    StanzaErrorCondition,
};
use thiserror::Error;

use super::handler::{ApplicationHandler, BaseHandler, HandlerFactory, Verdict};
use super::ids::IdGen;
use super::session::{ConnectionState, Session, SessionState, is_tie_break_action};
use super::tiebreak::{TieBreakRule, functionally_equivalent};

/// How long a request waits for its reply before the session ends with `timeout`.
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// The manager's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Our own full JID: the `from` of what we send, and one side of JID tie-breaks.
    pub jid: Jid,
    /// How long a request we sent waits for its IQ reply. When it passes, the session
    /// ends with reason `timeout` (XEP-0166 §7.4: "a request has not been answered").
    pub reply_timeout: Duration,
    /// The rule for crossed session-initiates (XEP-0166 §7.2.16 by default).
    pub tie_break: TieBreakRule,
    /// Seed for sids and stanza ids (deterministic tests); random when `None`.
    pub seed: Option<u64>,
    /// Emit [`Event::Log`] lines (off by default: they allocate).
    pub log: bool,
    /// The codec [`SessionManager::handle_xml`] parses with (limits, extension registry).
    pub codec: Codec,
}

impl Config {
    /// Defaults for `jid`: 30 s reply timeout, the XEP's tie-break rule, random ids, no
    /// log events.
    pub fn new(jid: Jid) -> Config {
        Config {
            jid,
            reply_timeout: DEFAULT_REPLY_TIMEOUT,
            tie_break: TieBreakRule::Xep0166,
            seed: None,
            log: false,
            codec: Codec::default(),
        }
    }
}

/// Something the application should know.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A session object exists (incoming: before its session-initiate is processed;
    /// outgoing: on `start`). The seed's `createdSession`.
    Created {
        /// The session id.
        sid: Sid,
        /// The other party.
        peer: Jid,
        /// Whether we are the initiator.
        initiator: bool,
    },
    /// A session-initiate was acknowledged: accept or decline it.
    Incoming {
        /// The session id.
        sid: Sid,
        /// The initiator.
        peer: Jid,
        /// The offered application formats (description namespaces), shared with
        /// [`Session::description_types`].
        description_types: Arc<[String]>,
        /// The offered transport methods.
        transport_types: Arc<[String]>,
    },
    /// Our session-initiate was queued for sending.
    Outgoing {
        /// The session id.
        sid: Sid,
        /// The responder.
        peer: Jid,
    },
    /// The session's state changed.
    StateChanged {
        /// The session id.
        sid: Sid,
        /// The state before.
        old: SessionState,
        /// The state now.
        new: SessionState,
    },
    /// The connection state the application reported changed.
    ConnectionStateChanged {
        /// The session id.
        sid: Sid,
        /// The state before.
        old: ConnectionState,
        /// The state now.
        new: ConnectionState,
    },
    /// An inbound action was acknowledged (any action but session-initiate and
    /// session-terminate, which have their own events).
    Received {
        /// The session id.
        sid: Sid,
        /// The action as received.
        jingle: Box<Jingle>,
    },
    /// A request we sent was acknowledged with an IQ-result.
    RequestAcknowledged {
        /// The session id.
        sid: Sid,
        /// The action of the request.
        action: Action,
    },
    /// A request we sent failed: an error reply, no reply in time, or the session ended
    /// before the reply came. With [`Event::RequestAcknowledged`], every request we send
    /// ends in exactly one of the two (session-terminate excepted: nothing waits for it).
    RequestFailed {
        /// The session id.
        sid: Sid,
        /// The action of the request.
        action: Action,
        /// What happened.
        failure: RequestFailure,
    },
    /// The session ended and is forgotten.
    Terminated {
        /// The session id.
        sid: Sid,
        /// The other party.
        peer: Jid,
        /// Whether we were the initiator.
        initiator: bool,
        /// Why: the peer's `<reason/>` (possibly absent) or ours. Boxed, like the error of
        /// [`RequestFailure::Error`]: every event is as large as its largest variant.
        reason: Option<Box<Reason>>,
        /// Whether the peer ended it (a session-terminate came in).
        by_peer: bool,
    },
    /// A diagnostic line (only with [`Config::log`]).
    Log {
        /// The session it concerns, if any.
        sid: Option<String>,
        /// What happened.
        message: String,
    },
}

/// How a request we sent failed.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RequestFailure {
    /// The peer answered with this error (boxed: see [`Event::Terminated`]).
    Error(Box<StanzaError>),
    /// No reply within [`Config::reply_timeout`].
    Timeout,
    /// The session ended first; a late reply will be ignored.
    SessionEnded,
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SessionError {
    /// No live session has this sid.
    #[error("unknown session {0:?}")]
    UnknownSession(String),
    /// A session with this sid exists already.
    #[error("session id {0:?} is in use")]
    SidInUse(String),
    /// A session-initiate needs at least one content (XEP-0166 §6.2).
    #[error("a session needs at least one content")]
    NoContents,
    /// The command does not fit the session's state or role.
    #[error("session {sid:?} cannot {command} in state {state:?} (initiator: {initiator})")]
    InvalidState {
        /// The session id.
        sid: String,
        /// The refused command.
        command: &'static str,
        /// The session's state.
        state: SessionState,
        /// Whether we are the initiator.
        initiator: bool,
    },
    /// This action has its own command (`start`, `accept`, `end`).
    #[error("{0} has its own command")]
    ReservedAction(Action),
    /// `complete` without a deferred request.
    #[error("session {0:?} has no deferred request")]
    NothingDeferred(String),
}

/// A request we sent and whose reply we wait for.
#[derive(Debug)]
struct Outstanding {
    sid: Sid,
    generation: u64,
    action: Action,
    peer: Jid,
    armed: bool,
}

/// A session and what the manager keeps beside it.
#[derive(Debug)]
struct Entry {
    session: Session,
    handler: Box<dyn ApplicationHandler>,
    /// Inbound requests not yet handed to the handler, oldest first.
    queue: VecDeque<Iq>,
    /// The request whose handler deferred its verdict.
    in_flight: Option<Box<Iq>>,
    /// Distinguishes this session from an earlier one with the same sid.
    generation: u64,
    /// Our session-initiate is still unanswered (tie-break candidate).
    initiate_unanswered: bool,
    /// A crossed session-initiate with a lower sid won against ours: its sid.
    superseded_by: Option<String>,
    /// Ids of our requests still waiting for their reply.
    requests: Vec<String>,
}

/// An IQ waiting in the transmit queue. Acknowledgements, most of what the manager
/// sends, wait as their id and addressee only: a whole `Iq` is large, and it would be
/// copied into the queue and out of it again.
#[derive(Debug)]
enum Outbound {
    /// An empty IQ-result from us.
    Ack { id: String, to: Option<Jid> },
    /// Any other IQ.
    Iq(Box<Iq>),
}

/// The manager's tables: keyed by sids and JIDs that peers choose, so the hasher must
/// resist HashDoS. foldhash's `RandomState` is randomly seeded (per process and per
/// table), so a peer cannot precompute colliding keys, and it is much cheaper than std's
/// SipHash on these short keys. It is not a keyed PRF like SipHash: foldhash claims only
/// this seeded ("minimal") DoS resistance.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Everything but the session table, so the two can be borrowed separately.
#[derive(Debug)]
struct Core {
    config: Config,
    transmits: VecDeque<Outbound>,
    events: VecDeque<Event>,
    outstanding: HashMap<String, Outstanding>,
    deadlines: BinaryHeap<Reverse<(Instant, String)>>,
    /// Sessions whose session-initiate is unanswered, by peer (tie-break candidates).
    initiating: HashMap<Jid, Vec<Sid>>,
    ids: IdGen,
    generation: u64,
    /// The namespace lists of the last session created (see [`namespaces`]).
    last_namespaces: (Arc<[String]>, Arc<[String]>),
    /// The sender of the last IQ read by `handle_xml`, whose JID the next one (often
    /// from the same peer) reuses.
    last_sender: Option<Jid>,
    /// The sid of the last request read by `handle_xml`, which the next one (often of
    /// the same session) reuses.
    last_sid: Option<Sid>,
}

/// What processing one inbound request did to its session.
enum Flow {
    /// Go on with the next queued request.
    Continue,
    /// The handler deferred: wait for `complete`.
    Stop,
    /// The session is over.
    End {
        reason: Option<Box<Reason>>,
        silent: bool,
        by_peer: bool,
    },
}

/// The Jingle session manager (sans-IO): one per local JID.
pub struct SessionManager {
    core: Core,
    /// Boxed: the table stays small (a slot is a key and a pointer), so lookups touch
    /// less memory and growing it moves less.
    sessions: HashMap<Sid, Box<Entry>>,
    factories: Vec<(String, HandlerFactory)>,
}

impl std::fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionManager")
            .field("jid", &self.core.config.jid)
            .field("sessions", &self.sessions.len())
            .field(
                "handlers",
                &self.factories.iter().map(|(ns, _)| ns).collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn unknown_session() -> StanzaError {
    StanzaError::jingle(JingleErrorCondition::UnknownSession)
}

fn out_of_order() -> StanzaError {
    StanzaError::jingle(JingleErrorCondition::OutOfOrder)
}

fn tie_break() -> StanzaError {
    StanzaError::jingle(JingleErrorCondition::TieBreak)
}

fn bad_request(text: Option<String>) -> StanzaError {
    let mut e = StanzaError::new(ErrorType::Cancel, StanzaErrorCondition::BadRequest);
    e.text = text;
    e
}

/// The application formats and transport methods of `contents` (description and
/// transport namespaces, in content order). Sessions of one application mostly offer the
/// same lists: `last` keeps the lists of the previous session, shared when they match
/// (no allocation), replaced when they do not.
fn namespaces(
    contents: &[Content],
    last: &mut (Arc<[String]>, Arc<[String]>),
) -> (Arc<[String]>, Arc<[String]>) {
    let descriptions = contents
        .iter()
        .filter_map(|c| c.description.as_ref().map(|d| d.namespace()));
    let transports = contents
        .iter()
        .filter_map(|c| c.transport.as_ref().map(|t| t.namespace()));
    if !descriptions.clone().eq(last.0.iter().map(String::as_str)) {
        last.0 = descriptions.map(str::to_owned).collect();
    }
    if !transports.clone().eq(last.1.iter().map(String::as_str)) {
        last.1 = transports.map(str::to_owned).collect();
    }
    (last.0.clone(), last.1.clone())
}

impl Core {
    fn log(&mut self, sid: Option<&str>, message: impl FnOnce() -> String) {
        if self.config.log {
            self.events.push_back(Event::Log {
                sid: sid.map(str::to_owned),
                message: message(),
            });
        }
    }

    /// Acknowledges `request`, taking its id and sender (the request is done with).
    fn ack(&mut self, request: &mut Iq) {
        self.transmits.push_back(Outbound::Ack {
            id: std::mem::take(&mut request.id),
            to: request.from.take(),
        });
    }

    fn reply_error(&mut self, request: &Iq, error: StanzaError) {
        let mut r = Iq::error_for(request, error);
        r.from = Some(self.config.jid.clone());
        self.transmits.push_back(Outbound::Iq(Box::new(r)));
    }

    fn set_state(&mut self, session: &mut Session, new: SessionState) {
        let old = session.state;
        if old != new {
            session.state = new;
            self.events.push_back(Event::StateChanged {
                sid: session.sid.clone(),
                old,
                new,
            });
        }
    }

    /// Queues a request of `entry`'s session and tracks its reply.
    fn send_request(&mut self, entry: &mut Entry, mut jingle: Jingle) -> String {
        let action = jingle.action;
        jingle.sid = entry.session.sid.clone();
        let id = self.ids.uuid();
        let mut iq = Iq::set(id.clone(), jingle);
        iq.from = Some(self.config.jid.clone());
        iq.to = Some(entry.session.peer.clone());
        // The terminate is the last word: nobody waits for its reply.
        if action != Action::SessionTerminate {
            entry.requests.push(id.clone());
            self.outstanding.insert(
                id.clone(),
                Outstanding {
                    sid: entry.session.sid.clone(),
                    generation: entry.generation,
                    action,
                    peer: entry.session.peer.clone(),
                    armed: false,
                },
            );
        }
        if is_tie_break_action(action) {
            entry.session.pending_action = Some(action);
        }
        self.transmits.push_back(Outbound::Iq(Box::new(iq)));
        id
    }

    fn forget_initiating(&mut self, peer: &Jid, sid: &str) {
        if let Some(v) = self.initiating.get_mut(peer) {
            v.retain(|s| s != sid);
            if v.is_empty() {
                self.initiating.remove(peer);
            }
        }
    }

    /// Ends `entry` (already removed from the table): state, terminate IQ, event, and an
    /// answer for every request still queued.
    fn finish(
        &mut self,
        mut entry: Box<Entry>,
        reason: Option<Box<Reason>>,
        silent: bool,
        by_peer: bool,
    ) {
        self.set_state(&mut entry.session, SessionState::Ended);
        if entry.initiate_unanswered {
            self.forget_initiating(&entry.session.peer, &entry.session.sid);
        }
        if !silent {
            let mut j = Jingle::new(Action::SessionTerminate, entry.session.sid.clone());
            j.reason = Some(
                reason
                    .clone()
                    .unwrap_or_else(|| Box::new(Reason::new(ReasonCondition::Success))),
            );
            self.send_request(&mut entry, j);
        }
        entry.session.pending_action = None;
        for id in entry.requests.drain(..) {
            if let Some(o) = self.outstanding.remove(&id) {
                self.events.push_back(Event::RequestFailed {
                    sid: o.sid,
                    action: o.action,
                    failure: RequestFailure::SessionEnded,
                });
            }
        }
        self.events.push_back(Event::Terminated {
            sid: entry.session.sid.clone(),
            peer: entry.session.peer.clone(),
            initiator: entry.session.initiator,
            reason,
            by_peer,
        });
        // RFC 6120 §8.2.3: every IQ-set gets exactly one reply. Requests queued behind
        // the end concern a session that is "no longer live" (XEP-0166 §10):
        // item-not-found + unknown-session.
        if let Some(iq) = entry.in_flight.take() {
            self.reply_error(&iq, unknown_session());
        }
        for iq in entry.queue.drain(..) {
            self.reply_error(&iq, unknown_session());
        }
    }
}

impl SessionManager {
    /// A manager for `config.jid` with no application handlers: every session gets the
    /// base behaviour until [`register`](Self::register) adds one.
    pub fn new(config: Config) -> SessionManager {
        let ids = IdGen::new(config.seed);
        SessionManager {
            core: Core {
                config,
                transmits: VecDeque::new(),
                events: VecDeque::new(),
                outstanding: HashMap::default(),
                deadlines: BinaryHeap::new(),
                initiating: HashMap::default(),
                ids,
                generation: 0,
                last_sender: None,
                last_sid: None,
                last_namespaces: (Arc::new([]), Arc::new([])),
            },
            sessions: HashMap::default(),
            factories: Vec::new(),
        }
    }

    /// Registers the handler factory for an application format (a description
    /// namespace). A session uses the factory of the first of its contents' formats that
    /// has one, else [`BaseHandler`].
    pub fn register(
        &mut self,
        namespace: impl Into<String>,
        factory: impl FnMut(&Session) -> Box<dyn ApplicationHandler> + Send + 'static,
    ) -> &mut Self {
        let namespace = namespace.into();
        self.factories.retain(|(ns, _)| *ns != namespace);
        self.factories
            .push((namespace, Box::new(factory) as HandlerFactory));
        self
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.core.config
    }

    /// Our JID.
    pub fn jid(&self) -> &Jid {
        &self.core.config.jid
    }

    /// A live session.
    pub fn session(&self, sid: &str) -> Option<&Session> {
        self.sessions.get(sid).map(|e| &e.session)
    }

    /// Every live session (in no particular order).
    pub fn sessions(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values().map(|e| &e.session)
    }

    /// How many sessions are live.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether no session is live.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// How many inbound requests wait in `sid`'s queue (the deferred one included).
    pub fn queued(&self, sid: &str) -> usize {
        self.sessions
            .get(sid)
            .map_or(0, |e| e.queue.len() + usize::from(e.in_flight.is_some()))
    }

    fn handler_for(&mut self, session: &Session) -> Box<dyn ApplicationHandler> {
        for ns in session.description_types.iter() {
            if let Some((_, f)) = self.factories.iter_mut().find(|(n, _)| n == ns) {
                return f(session);
            }
        }
        Box::new(BaseHandler)
    }

    fn new_entry(&mut self, session: Session) -> Box<Entry> {
        self.core.generation += 1;
        let handler = self.handler_for(&session);
        Box::new(Entry {
            session,
            handler,
            queue: VecDeque::new(),
            in_flight: None,
            generation: self.core.generation,
            initiate_unanswered: false,
            superseded_by: None,
            requests: Vec::new(),
        })
    }

    // ----------------------------------------------------------------- outputs

    /// The next IQ to send. `now` starts the reply timer of a request.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Iq> {
        let iq = match self.core.transmits.pop_front()? {
            Outbound::Ack { id, to } => {
                return Some(Iq {
                    kind: IqType::Result,
                    id,
                    from: Some(self.core.config.jid.clone()),
                    to,
                    lang: None,
                    jingle: None,
                    error: None,
                });
            }
            Outbound::Iq(iq) => *iq,
        };
        if iq.kind == IqType::Set
            && let Some(o) = self.core.outstanding.get_mut(&iq.id)
            && !o.armed
        {
            o.armed = true;
            self.core.deadlines.push(Reverse((
                now + self.core.config.reply_timeout,
                iq.id.clone(),
            )));
        }
        Some(iq)
    }

    /// [`poll_transmit`](Self::poll_transmit) for a caller that sends XML text: the
    /// next IQ is appended to `out` (as [`Iq::to_xml`] writes it) and its type returned.
    /// With a reused buffer (a connection's output buffer), an acknowledgement costs no
    /// allocation.
    pub fn poll_transmit_xml(&mut self, now: Instant, out: &mut String) -> Option<IqType> {
        let iq = self.poll_transmit(now)?;
        iq.write_xml(out);
        Some(iq.kind)
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.core.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should be called next (it may be
    /// early: answered requests leave their deadline behind until it passes).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.core.deadlines.peek().map(|Reverse((t, _))| *t)
    }

    /// Expires the requests whose reply did not come in time: each one's session ends
    /// with reason `timeout` (XEP-0166 §7.4), a session-terminate telling the peer.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((t, _))) = self.core.deadlines.peek() {
            if *t > now {
                break;
            }
            let Some(Reverse((_, id))) = self.core.deadlines.pop() else {
                break;
            };
            let Some(o) = self.core.outstanding.remove(&id) else {
                continue;
            };
            let Some(entry) = self
                .sessions
                .get_mut(&o.sid)
                .filter(|e| e.generation == o.generation)
            else {
                continue;
            };
            entry.requests.retain(|r| *r != id);
            self.core.events.push_back(Event::RequestFailed {
                sid: o.sid.clone(),
                action: o.action,
                failure: RequestFailure::Timeout,
            });
            self.core.log(Some(&o.sid), || {
                format!("{} {id} unanswered: ending the session", o.action)
            });
            self.end_entry(
                &o.sid,
                Some(Box::new(Reason::new(ReasonCondition::Timeout))),
                false,
                false,
            );
        }
    }

    // ------------------------------------------------------------------ inputs

    /// Handles one IQ from the signaling channel: a Jingle request (answered exactly
    /// once, now or when its turn in the session's queue comes) or the reply to one of
    /// ours.
    pub fn handle_iq(&mut self, iq: Iq, now: Instant) {
        let _ = now;
        match iq.kind {
            IqType::Result | IqType::Error => self.handle_reply(iq),
            // XEP-0166 §7.2: every Jingle action is an IQ-set; RFC 6120 §8.2.3 still
            // wants an answer to the get.
            IqType::Get => self
                .core
                .reply_error(&iq, bad_request(Some("Jingle actions are IQ-set".into()))),
            IqType::Set => self.handle_request(iq),
        }
    }

    /// Parses `input` (one `<iq/>`) with the configured codec and handles it. A request
    /// that is well-formed XML but not a valid Jingle IQ is answered with `bad-request`
    /// (XEP-0166 §6.3.2, §7.2: malformed requests and unknown actions); input that is
    /// not XML at all cannot be answered (no id) and is only reported.
    pub fn handle_xml(&mut self, input: &[u8], now: Instant) -> Result<(), ParseError> {
        // The common case: a valid IQ, decoded without an element tree, our own JID and
        // the last sender's reused rather than parsed and allocated again.
        let core = &mut self.core;
        let me = &core.config.jid;
        let sid = core.last_sid.as_ref();
        let parsed = match &core.last_sender {
            Some(peer) => core.config.codec.parse_iq_reusing(
                input,
                Known {
                    jids: &[me, peer],
                    sid,
                },
            ),
            None => core
                .config
                .codec
                .parse_iq_reusing(input, Known { jids: &[me], sid }),
        };
        if let Ok(iq) = parsed {
            if iq.from.is_some() {
                core.last_sender.clone_from(&iq.from);
            }
            if let Some(j) = &iq.jingle {
                core.last_sid = Some(j.sid.clone());
            }
            self.handle_iq(iq, now);
            return Ok(());
        }
        let el = Element::parse(input, &self.core.config.codec.limits)?;
        match self.core.config.codec.decode_element(el) {
            Ok(huddle_jingle::Document::Iq(iq)) => {
                self.handle_iq(iq, now);
                Ok(())
            }
            Ok(huddle_jingle::Document::Jingle(_)) => Err(ParseError::UnexpectedElement {
                expected: "iq",
                name: "jingle".into(),
                namespace: huddle_jingle::ns::JINGLE.into(),
            }),
            Err(e) => {
                // The rare malformed request: read the document again for what the
                // answer needs (the decoder consumed the element; copying id and sender
                // out of every well-formed request first would cost more).
                if let Ok(el) = Element::parse(input, &self.core.config.codec.limits)
                    && let (Some(IqType::Set | IqType::Get), Some(id)) =
                        (el.attr("type").and_then(IqType::from_wire), el.attr("id"))
                {
                    let from = el.attr("from").and_then(|f| Jid::new(f).ok());
                    self.reject_malformed(from, id.to_owned(), &e);
                }
                Err(e)
            }
        }
    }

    /// Answers a request that could not be decoded (e.g. an action XEP-0166 does not
    /// define, a missing sid): `bad-request` (XEP-0166 §7.2: "If an entity receives a
    /// value not defined here, it [...] MUST return a `<bad-request/>` error").
    pub fn reject_malformed(&mut self, from: Option<Jid>, id: String, error: &ParseError) {
        let request = Iq {
            kind: IqType::Set,
            id,
            from,
            to: Some(self.core.config.jid.clone()),
            lang: None,
            jingle: None,
            error: None,
        };
        self.core
            .reply_error(&request, bad_request(Some(error.to_string())));
    }

    fn handle_reply(&mut self, iq: Iq) {
        let Some(o) = self.core.outstanding.remove(&iq.id) else {
            self.core.log(None, || {
                format!("reply {} matches no request: ignored", iq.id)
            });
            return;
        };
        // RFC 6120 §10.1: the reply comes from the entity the request went to.
        if iq.from.as_ref() != Some(&o.peer) {
            self.core.log(Some(&o.sid), || {
                format!("reply {} from the wrong entity: ignored", iq.id)
            });
            self.core.outstanding.insert(iq.id, o);
            return;
        }
        let Some(entry) = self
            .sessions
            .get_mut(&o.sid)
            .filter(|e| e.generation == o.generation)
        else {
            return;
        };
        entry.requests.retain(|r| *r != iq.id);
        if entry.session.pending_action == Some(o.action) {
            entry.session.pending_action = None;
        }
        if o.action == Action::SessionInitiate && entry.initiate_unanswered {
            entry.initiate_unanswered = false;
            self.core.forget_initiating(&o.peer, &o.sid);
        }
        if iq.kind == IqType::Result {
            self.core.events.push_back(Event::RequestAcknowledged {
                sid: o.sid,
                action: o.action,
            });
            return;
        }
        let error = iq.error;
        let condition = error.as_ref().and_then(|e| e.jingle_condition);
        let superseded = entry.superseded_by.clone();
        self.core.events.push_back(Event::RequestFailed {
            sid: o.sid.clone(),
            action: o.action,
            failure: RequestFailure::Error(Box::new(error.as_deref().cloned().unwrap_or_else(
                || StanzaError::new(ErrorType::Cancel, StanzaErrorCondition::UndefinedCondition),
            ))),
        });
        if o.action == Action::SessionInitiate {
            // XEP-0166 §7.2.16: the peer's session-initiate overruled ours (tie-break),
            // or §6.3.2: the responder refused the initiation outright. Either way the
            // session never existed for the peer: end it without a terminate.
            let reason = if condition == Some(JingleErrorCondition::TieBreak) {
                let mut r = Reason::new(ReasonCondition::AlternativeSession);
                r.alternative_session = superseded;
                r
            } else {
                let mut r = Reason::new(ReasonCondition::GeneralError);
                r.text = Some(format!(
                    "session-initiate refused: {}",
                    error.as_ref().map_or("error", |e| e.condition.as_str())
                ));
                r
            };
            self.end_entry(&o.sid, Some(Box::new(reason)), true, false);
        } else if condition == Some(JingleErrorCondition::UnknownSession) {
            // XEP-0166 §10: the peer no longer knows the session.
            let mut r = Reason::new(ReasonCondition::Gone);
            r.text = Some("the peer does not know the session".into());
            self.end_entry(&o.sid, Some(Box::new(r)), true, false);
        }
    }

    fn handle_request(&mut self, mut iq: Iq) {
        let Some(j) = iq.jingle.as_ref() else {
            return self
                .core
                .reply_error(&iq, bad_request(Some("IQ-set without <jingle/>".into())));
        };
        let Some(from) = iq.from.as_ref() else {
            return self
                .core
                .reply_error(&iq, bad_request(Some("request without a sender".into())));
        };
        if j.action == Action::SessionInitiate {
            let (from, sid) = (from.clone(), j.sid.clone());
            return self.handle_initiate(iq, from, sid);
        }
        match self.sessions.get_mut(j.sid.as_str()) {
            // XEP-0166 §10 unknown-session: the sid names no live session with this
            // sender (a wrong sender gets the same answer: the session is not theirs).
            Some(e)
                if e.session.peer == *from
                    && !(e.session.initiator && e.session.state == SessionState::Starting) =>
            {
                if e.in_flight.is_some() || !e.queue.is_empty() {
                    e.queue.push_back(iq);
                    return;
                }
                // The queue is empty: handle the request at once.
                if let Flow::End {
                    reason,
                    silent,
                    by_peer,
                } = process(&mut self.core, e, &mut iq)
                {
                    let sid = e.session.sid.clone();
                    if let Some(entry) = self.sessions.remove(sid.as_str()) {
                        self.core.finish(entry, reason, silent, by_peer);
                    }
                }
            }
            _ => {
                self.core.log(Some(&j.sid), || {
                    format!("{} for an unknown session or from a wrong sender", j.action)
                });
                self.core.reply_error(&iq, unknown_session());
            }
        }
    }

    fn handle_initiate(&mut self, mut iq: Iq, from: Jid, sid: Sid) {
        let Some(j) = iq.jingle.as_ref() else { return };
        if let Some(e) = self.sessions.get(sid.as_str()) {
            if e.session.peer != from {
                // A sid already in use with someone else: refuse rather than mix the
                // two up (jingle.js does the same).
                self.core
                    .log(Some(&sid), || "duplicate sid from another sender".into());
                return self.core.reply_error(
                    &iq,
                    StanzaError::new(ErrorType::Cancel, StanzaErrorCondition::ServiceUnavailable),
                );
            }
            if !(e.session.initiator && e.initiate_unanswered) {
                // XEP-0166 §10 out-of-order: session-initiate for a live session.
                return self.core.reply_error(&iq, out_of_order());
            }
            // XEP-0166 §7.2.16: both sides picked the same sid; "the action sent by the
            // lower of the JabberIDs MUST overrule the other action".
            if self
                .core
                .config
                .tie_break
                .local_wins(&sid, &self.core.config.jid, &sid, &from)
            {
                self.core.log(Some(&sid), || {
                    "crossed session-initiate with our sid: ours wins".into()
                });
                return self.core.reply_error(&iq, tie_break());
            }
            self.core.log(Some(&sid), || {
                "crossed session-initiate with our sid: theirs wins".into()
            });
            let mut r = Reason::new(ReasonCondition::AlternativeSession);
            r.alternative_session = Some(sid.to_string());
            self.end_entry(&sid, Some(Box::new(r)), true, false);
        }
        // XEP-0166 §6.2: a session-initiate carries one or more contents; a malformed
        // initiation gets bad-request (§6.3.2).
        if j.contents.is_empty() {
            return self.core.reply_error(
                &iq,
                bad_request(Some("session-initiate without contents".into())),
            );
        }
        // XEP-0166 §7.2.10: at least one content has disposition "session", else the
        // responder MUST return bad-request.
        if !j
            .contents
            .iter()
            .any(|c| c.disposition == huddle_jingle::DEFAULT_DISPOSITION)
        {
            return self.core.reply_error(
                &iq,
                bad_request(Some("no content with disposition 'session'".into())),
            );
        }
        let (descriptions, transports) = namespaces(&j.contents, &mut self.core.last_namespaces);
        // XEP-0166 §7.2.16 "No existing session": our own unanswered session-initiate to
        // this peer for an equivalent application crosses theirs.
        if let Some(ours) = self.core.initiating.get(&from).cloned() {
            for our_sid in ours {
                let Some(e) = self.sessions.get_mut(&our_sid) else {
                    continue;
                };
                if !functionally_equivalent(&e.session.description_types, &descriptions) {
                    continue;
                }
                if self.core.config.tie_break.local_wins(
                    &our_sid,
                    &self.core.config.jid,
                    &sid,
                    &from,
                ) {
                    // "the party that receives the session-initiate action with the
                    // higher of the two session IDs MUST return a <conflict/> error".
                    self.core.log(Some(&sid), || {
                        format!("crossed session-initiate: ours ({our_sid}) wins")
                    });
                    return self.core.reply_error(&iq, tie_break());
                }
                // "The party that receives the session-initiate action with the lower of
                // the two session IDs MUST acknowledge the action": ours will be refused.
                e.superseded_by = Some(sid.to_string());
            }
        }
        let session = Session::new(sid.clone(), from.clone(), false, (descriptions, transports));
        let mut entry = self.new_entry(session);
        self.core.events.push_back(Event::Created {
            sid: sid.clone(),
            peer: from,
            initiator: false,
        });
        // The session is new, its queue empty: handle the initiate at once.
        let flow = process(&mut self.core, &mut entry, &mut iq);
        if let Flow::End {
            reason,
            silent,
            by_peer,
        } = flow
        {
            self.core.finish(entry, reason, silent, by_peer);
        } else {
            self.sessions.insert(sid, entry);
        }
    }

    /// Processes `sid`'s queue until it is empty, a handler defers, or the session ends.
    fn drive(&mut self, sid: &str) {
        loop {
            let Some(entry) = self.sessions.get_mut(sid) else {
                return;
            };
            if entry.in_flight.is_some() {
                return;
            }
            let Some(mut iq) = entry.queue.pop_front() else {
                // Give back the queue's buffer: idle sessions hold no request memory.
                entry.queue = VecDeque::new();
                return;
            };
            match process(&mut self.core, entry, &mut iq) {
                Flow::Continue => {}
                Flow::Stop => return,
                Flow::End {
                    reason,
                    silent,
                    by_peer,
                } => {
                    self.end_entry(sid, reason, silent, by_peer);
                    return;
                }
            }
        }
    }

    fn end_entry(&mut self, sid: &str, reason: Option<Box<Reason>>, silent: bool, by_peer: bool) {
        if let Some(entry) = self.sessions.remove(sid) {
            self.core.finish(entry, reason, silent, by_peer);
        }
    }

    // ---------------------------------------------------------------- commands

    /// Starts an outgoing session to `peer` with a fresh random sid (returned): the
    /// session-initiate is queued and the session is `Pending`, or, if the application
    /// handler refuses to start, the session ends at once without anything sent.
    pub fn start(&mut self, peer: Jid, contents: Vec<Content>) -> Result<String, SessionError> {
        let sid = self.core.ids.uuid();
        self.start_with_sid(sid.clone(), peer, contents)?;
        Ok(sid)
    }

    /// [`start`](Self::start) with a sid of the caller's choosing.
    pub fn start_with_sid(
        &mut self,
        sid: String,
        peer: Jid,
        contents: Vec<Content>,
    ) -> Result<(), SessionError> {
        if self.sessions.contains_key(sid.as_str()) {
            return Err(SessionError::SidInUse(sid));
        }
        if contents.is_empty() {
            return Err(SessionError::NoContents);
        }
        let sid = Sid::from(sid);
        let lists = namespaces(&contents, &mut self.core.last_namespaces);
        let session = Session::new(sid.clone(), peer.clone(), true, lists);
        let mut entry = self.new_entry(session);
        self.core.events.push_back(Event::Created {
            sid: sid.clone(),
            peer: peer.clone(),
            initiator: true,
        });
        if let Err(reason) = entry.handler.start(&entry.session) {
            self.core.finish(entry, Some(Box::new(reason)), true, false);
            return Ok(());
        }
        self.core
            .set_state(&mut entry.session, SessionState::Pending);
        self.core.events.push_back(Event::Outgoing {
            sid: sid.clone(),
            peer: peer.clone(),
        });
        let mut j = Jingle::new(Action::SessionInitiate, sid.clone());
        // XEP-0166 §7.1: the initiator attribute names the initiator's full JID.
        j.initiator = Some(self.core.config.jid.clone());
        j.contents = contents;
        self.core.send_request(&mut entry, j);
        entry.initiate_unanswered = true;
        self.core
            .initiating
            .entry(peer)
            .or_default()
            .push(sid.clone());
        self.sessions.insert(sid, entry);
        Ok(())
    }

    /// Accepts an incoming pending session: session-accept with the contents the
    /// handler gives, or, when the handler cannot accept, a session-terminate with its
    /// reason.
    pub fn accept(&mut self, sid: &str) -> Result<(), SessionError> {
        let entry = live(&mut self.sessions, sid, "accept", |s| {
            !s.initiator && s.state == SessionState::Pending
        })?;
        match entry.handler.accept(&entry.session) {
            Ok(contents) => {
                self.core
                    .set_state(&mut entry.session, SessionState::Active);
                let mut j = Jingle::new(Action::SessionAccept, entry.session.sid.clone());
                // XEP-0166 §7.1: the responder attribute names the responder's full JID.
                j.responder = Some(self.core.config.jid.clone());
                j.contents = contents;
                self.core.send_request(entry, j);
                Ok(())
            }
            Err(reason) => {
                self.end_entry(sid, Some(Box::new(reason)), false, false);
                Ok(())
            }
        }
    }

    /// Declines an incoming session: `end` with reason `decline` (XEP-0166 §6.7).
    pub fn decline(&mut self, sid: &str) -> Result<(), SessionError> {
        self.end(sid, Some(Reason::new(ReasonCondition::Decline)), false)
    }

    /// Cancels an outgoing session before it is accepted: `end` with reason `cancel`.
    pub fn cancel(&mut self, sid: &str) -> Result<(), SessionError> {
        self.end(sid, Some(Reason::new(ReasonCondition::Cancel)), false)
    }

    /// Ends a session: state `Ended`, a session-terminate with `reason` (`success` when
    /// `None`) unless `silent`, a [`Event::Terminated`], and an `unknown-session` error
    /// for every inbound request still queued.
    pub fn end(
        &mut self,
        sid: &str,
        reason: Option<Reason>,
        silent: bool,
    ) -> Result<(), SessionError> {
        if !self.sessions.contains_key(sid) {
            return Err(SessionError::UnknownSession(sid.to_owned()));
        }
        let reason = reason.unwrap_or_else(|| Reason::new(ReasonCondition::Success));
        self.end_entry(sid, Some(Box::new(reason)), silent, false);
        Ok(())
    }

    /// Ends every session with `peer` (reason `gone` when `None`); returns how many.
    pub fn end_peer_sessions(&mut self, peer: &Jid, reason: Option<Reason>, silent: bool) -> usize {
        let sids: Vec<Sid> = self
            .sessions
            .values()
            .filter(|e| e.session.peer == *peer)
            .map(|e| e.session.sid.clone())
            .collect();
        self.end_many(sids, reason, silent)
    }

    /// Ends every session (reason `gone` when `None`); returns how many.
    pub fn end_all(&mut self, reason: Option<Reason>, silent: bool) -> usize {
        let sids: Vec<Sid> = self.sessions.keys().cloned().collect();
        self.end_many(sids, reason, silent)
    }

    fn end_many(&mut self, mut sids: Vec<Sid>, reason: Option<Reason>, silent: bool) -> usize {
        sids.sort();
        let reason = Box::new(reason.unwrap_or_else(|| Reason::new(ReasonCondition::Gone)));
        for sid in &sids {
            self.end_entry(sid, Some(reason.clone()), silent, false);
        }
        sids.len()
    }

    /// Sends a session-info (XEP-0166 §6.8; `None` is a ping). Returns the IQ id.
    pub fn send_info(
        &mut self,
        sid: &str,
        info: Option<SessionInfo>,
    ) -> Result<String, SessionError> {
        let mut j = Jingle::new(Action::SessionInfo, sid);
        j.info = info.map(Box::new);
        self.send_action(sid, j)
    }

    /// Sends any other action (content-add, transport-info, ...) in a live session.
    /// session-initiate, session-accept and session-terminate have their own commands.
    /// Returns the IQ id.
    pub fn send_action(&mut self, sid: &str, jingle: Jingle) -> Result<String, SessionError> {
        if matches!(
            jingle.action,
            Action::SessionInitiate | Action::SessionAccept | Action::SessionTerminate
        ) {
            return Err(SessionError::ReservedAction(jingle.action));
        }
        let entry = live(&mut self.sessions, sid, "send an action", |s| {
            matches!(s.state, SessionState::Pending | SessionState::Active)
        })?;
        Ok(self.core.send_request(entry, jingle))
    }

    /// Records the connection state the application's transport reached.
    pub fn set_connection_state(
        &mut self,
        sid: &str,
        state: ConnectionState,
    ) -> Result<(), SessionError> {
        let entry = self
            .sessions
            .get_mut(sid)
            .ok_or_else(|| SessionError::UnknownSession(sid.to_owned()))?;
        let old = entry.session.connection_state;
        if old != state {
            entry.session.connection_state = state;
            self.core.events.push_back(Event::ConnectionStateChanged {
                sid: entry.session.sid.clone(),
                old,
                new: state,
            });
        }
        Ok(())
    }

    /// Gives the verdict on the request a handler deferred; the session's queue then
    /// moves on.
    pub fn complete(&mut self, sid: &str, verdict: Verdict) -> Result<(), SessionError> {
        let entry = self
            .sessions
            .get_mut(sid)
            .ok_or_else(|| SessionError::UnknownSession(sid.to_owned()))?;
        let mut iq = entry
            .in_flight
            .take()
            .ok_or_else(|| SessionError::NothingDeferred(sid.to_owned()))?;
        match apply(&mut self.core, entry, &mut iq, verdict) {
            Flow::Continue => self.drive(sid),
            Flow::Stop => {}
            Flow::End {
                reason,
                silent,
                by_peer,
            } => self.end_entry(sid, reason, silent, by_peer),
        }
        Ok(())
    }
}

/// The live session `sid`, if `ok` says the command fits it.
fn live<'a>(
    sessions: &'a mut HashMap<Sid, Box<Entry>>,
    sid: &str,
    command: &'static str,
    ok: impl Fn(&Session) -> bool,
) -> Result<&'a mut Entry, SessionError> {
    let entry = sessions
        .get_mut(sid)
        .ok_or_else(|| SessionError::UnknownSession(sid.to_owned()))?;
    if ok(&entry.session) {
        Ok(entry)
    } else {
        Err(SessionError::InvalidState {
            sid: sid.to_owned(),
            command,
            state: entry.session.state,
            initiator: entry.session.initiator,
        })
    }
}

/// Runs the protocol checks on one inbound request, then its handler. The request is
/// worked on in place (an `Iq` is large: moving it costs more than the work); what is
/// left of it afterwards is dropped by the caller.
fn process(core: &mut Core, entry: &mut Entry, iq: &mut Iq) -> Flow {
    let Some(j) = iq.jingle.as_mut() else {
        core.reply_error(iq, bad_request(None));
        return Flow::Continue;
    };
    let s = &entry.session;
    match j.action {
        Action::SessionInitiate => {
            if s.state != SessionState::Starting || s.initiator {
                core.reply_error(iq, out_of_order());
                return Flow::Continue;
            }
        }
        Action::SessionTerminate => {
            // XEP-0166 §6.7: the peer ends the session; acknowledge, then it is over.
            let reason = j.reason.take();
            core.ack(iq);
            return Flow::End {
                reason,
                silent: true,
                by_peer: true,
            };
        }
        Action::SessionAccept => {
            // XEP-0166 §5.1: session-accept moves PENDING to ACTIVE, and only the
            // responder sends it; anything else is out-of-order (§10).
            if !s.initiator || s.state != SessionState::Pending {
                core.log(Some(&s.sid), || "session-accept out of order".into());
                core.reply_error(iq, out_of_order());
                return Flow::Continue;
            }
        }
        action => {
            // XEP-0166 §7.2.16 "Existing session": the same action from both parties at
            // once; "the action sent by the initiator MUST overrule the action sent by
            // the responder [...] the initiator MUST return a <conflict/> error".
            if is_tie_break_action(action) && s.pending_action == Some(action) && s.initiator {
                core.log(Some(&s.sid), || {
                    format!("crossed {action}: ours (initiator) wins")
                });
                core.reply_error(iq, tie_break());
                return Flow::Continue;
            }
        }
    }
    let verdict = entry.handler.on_action(&entry.session, j);
    apply(core, entry, iq, verdict)
}

/// An empty request, left behind where a request is moved out of its place.
fn vacated() -> Iq {
    Iq {
        kind: IqType::Set,
        id: String::new(),
        from: None,
        to: None,
        lang: None,
        jingle: None,
        error: None,
    }
}

/// Carries out a handler's verdict on an inbound request.
fn apply(core: &mut Core, entry: &mut Entry, iq: &mut Iq, verdict: Verdict) -> Flow {
    let action = match &iq.jingle {
        Some(j) => j.action,
        None => return Flow::Continue,
    };
    let follow_up = match verdict {
        Verdict::Defer => {
            entry.in_flight = Some(Box::new(std::mem::replace(iq, vacated())));
            return Flow::Stop;
        }
        Verdict::Reject(e) => {
            core.reply_error(iq, e);
            if action == Action::SessionInitiate {
                // The initiation was refused: the session never existed for the peer.
                return Flow::End {
                    reason: None,
                    silent: true,
                    by_peer: false,
                };
            }
            return Flow::Continue;
        }
        Verdict::Ack => None,
        Verdict::AckAndSend(j) => Some(*j),
    };
    match action {
        // XEP-0166 §5.1: session-initiate → PENDING, session-accept → ACTIVE.
        Action::SessionInitiate => core.set_state(&mut entry.session, SessionState::Pending),
        Action::SessionAccept => core.set_state(&mut entry.session, SessionState::Active),
        _ => {}
    }
    core.ack(iq);
    let jingle = iq.jingle.take();
    let sid = entry.session.sid.clone();
    if action == Action::SessionInitiate {
        core.events.push_back(Event::Incoming {
            sid,
            peer: entry.session.peer.clone(),
            description_types: entry.session.description_types.clone(),
            transport_types: entry.session.transport_types.clone(),
        });
    } else if let Some(jingle) = jingle {
        core.events.push_back(Event::Received { sid, jingle });
    }
    if let Some(j) = follow_up {
        core.send_request(entry, j);
    }
    Flow::Continue
}
