//! The sans-IO Carrier session manager: sessions, streams and their states, the offer and
//! answer carried in Jingle contents. It never touches a socket: it asks the I/O layer to
//! bind, dial and expect streams ([`CarrierEvent::Bind`], [`CarrierEvent::Connect`],
//! [`CarrierEvent::Expect`]) and is told what happened (`set_local_candidate`,
//! `stream_connected`, `stream_ended`).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use huddle_jingle::{
    Action, Content, Creator, Description, Element, Iq, Jid, Jingle, Reason, ReasonCondition,
    Transport,
};

use crate::jingle::{
    self, ApplicationHandler, Config, Session, SessionError, SessionManager, Verdict, base_verdict,
};

/// The Jingle description namespace of a Carrier stream (huddle's own format).
pub const NS_CARRIER: &str = "urn:huddle:carrier:0";
/// The Jingle transport namespace of a Carrier stream: one loopback/LAN TCP connection.
pub const NS_CARRIER_TCP: &str = "urn:huddle:carrier:tcp:0";

/// What a stream carries (Carrier's `StreamType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StreamType {
    /// Audio.
    Audio,
    /// Video.
    Video,
    /// Text.
    Text,
    /// Application data.
    Application,
    /// Messages.
    Message,
}

impl StreamType {
    /// The wire token.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamType::Audio => "audio",
            StreamType::Video => "video",
            StreamType::Text => "text",
            StreamType::Application => "application",
            StreamType::Message => "message",
        }
    }

    /// Parses a wire token.
    pub fn from_name(s: &str) -> Option<StreamType> {
        Some(match s {
            "audio" => StreamType::Audio,
            "video" => StreamType::Video,
            "text" => StreamType::Text,
            "application" => StreamType::Application,
            "message" => StreamType::Message,
            _ => return None,
        })
    }
}

/// Carrier's stream options (`PROPERTY_RELIABLE`, `PROPERTY_MULTIPLEXING`,
/// `PROPERTY_PORT_FORWARDING`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamOptions {
    /// Reliable delivery. huddle carries every stream over TCP, so an unreliable stream is
    /// delivered best-effort over the same mechanism (in practice reliably); the flag is
    /// negotiated so the peer knows what the application asked for.
    pub reliable: bool,
    /// Channels multiplexed over the stream (huddle-transport's mux).
    pub multiplexing: bool,
    /// Port forwarding over the stream's channels (implies `multiplexing`).
    pub port_forwarding: bool,
}

impl StreamOptions {
    /// A reliable stream with channels and port forwarding.
    pub fn full() -> StreamOptions {
        StreamOptions {
            reliable: true,
            multiplexing: true,
            port_forwarding: true,
        }
    }

    fn normalized(mut self) -> StreamOptions {
        if self.port_forwarding {
            self.multiplexing = true;
        }
        self
    }
}

/// A stream's state, in Carrier's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StreamState {
    /// Added to its session.
    Initialized,
    /// Its local transport (candidate) is ready.
    TransportReady,
    /// `start` was called: the transport is being connected.
    Connecting,
    /// Connected: data and channels flow.
    Connected,
    /// The answer did not accept this stream.
    Deactivated,
    /// Closed (the session ended, or the stream was closed gracefully).
    Closed,
    /// Failed (connect failure, the peer vanished).
    Failed,
}

impl StreamState {
    /// Whether the stream is over.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            StreamState::Deactivated | StreamState::Closed | StreamState::Failed
        )
    }
}

/// A session handle, local to one manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

/// A stream handle within its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub u32);

/// Where a stream's transport can be reached, and the token the dialer presents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The listening address.
    pub addr: SocketAddr,
    /// A token the dialer sends first, so the listener knows the connection is ours.
    pub token: String,
}

/// One stream of a remote description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteStream {
    /// The stream's name (the Jingle content name).
    pub name: String,
    /// Its type.
    pub kind: StreamType,
    /// Its options.
    pub options: StreamOptions,
    /// Its transport candidate.
    pub candidate: Candidate,
}

/// The peer's offer or answer (Carrier's "sdp"), decoded from Jingle contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteDescription {
    /// The Jingle sid carrying the session.
    pub sid: String,
    /// The streams, in the order of the contents.
    pub streams: Vec<RemoteStream>,
}

impl RemoteDescription {
    fn stream(&self, name: &str) -> Option<&RemoteStream> {
        self.streams.iter().find(|s| s.name == name)
    }
}

/// What the manager reports; I/O requests are events too.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CarrierEvent {
    /// A session request came in (Carrier's `onSessionRequest(peer, sdp)`): add streams,
    /// then `reply_request` and `start(offer)`.
    SessionRequest {
        /// The new session (already created on our side).
        session: SessionId,
        /// The requesting peer.
        peer: Jid,
        /// The offer.
        offer: RemoteDescription,
    },
    /// The peer replied to our request (Carrier's `onCompletion(status, reason, sdp)`);
    /// `status` 0 is acceptance.
    RequestCompleted {
        /// The session.
        session: SessionId,
        /// 0 when accepted.
        status: i32,
        /// The refusal's text.
        reason: Option<String>,
        /// The answer, when accepted.
        answer: Option<RemoteDescription>,
    },
    /// A stream changed state.
    StreamState {
        /// The session.
        session: SessionId,
        /// The stream.
        stream: StreamId,
        /// The new state.
        state: StreamState,
    },
    /// I/O request: prepare a local transport for this stream and report it with
    /// [`CarrierManager::set_local_candidate`].
    Bind {
        /// The session.
        session: SessionId,
        /// The stream.
        stream: StreamId,
    },
    /// I/O request: dial the peer's candidate, present its token, then report with
    /// `stream_connected` or `stream_ended`.
    Connect {
        /// The session.
        session: SessionId,
        /// The stream.
        stream: StreamId,
        /// Where to dial.
        remote: Candidate,
        /// The negotiated options.
        options: StreamOptions,
    },
    /// I/O request: accept the peer's connection on this stream's local transport (it
    /// presents the local candidate's token), then report it.
    Expect {
        /// The session.
        session: SessionId,
        /// The stream.
        stream: StreamId,
        /// The negotiated options.
        options: StreamOptions,
    },
    /// The session ended; every stream is in a final state.
    SessionClosed {
        /// The session.
        session: SessionId,
        /// Why, when known.
        reason: Option<Reason>,
    },
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CarrierError {
    /// No such session.
    #[error("unknown session {0:?}")]
    UnknownSession(SessionId),
    /// No such stream.
    #[error("unknown stream {0:?}")]
    UnknownStream(StreamId),
    /// The command does not apply in the session's phase.
    #[error("{op} is not allowed now ({phase})")]
    InvalidState {
        /// The command.
        op: &'static str,
        /// The session's phase.
        phase: &'static str,
    },
    /// `request`, `reply_request` or `start` with a stream not yet transport-ready.
    #[error("stream {0:?} is not transport-ready")]
    NotTransportReady(StreamId),
    /// A session without streams cannot be requested or accepted.
    #[error("the session has no streams")]
    NoStreams,
    /// A responder stream that matches no offered stream of its type.
    #[error("the offer has no free stream of type {0:?}")]
    NoMatchingOffer(StreamType),
    /// The Jingle layer refused.
    #[error(transparent)]
    Jingle(#[from] SessionError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Initiator, before `request`.
    New,
    /// Initiator, waiting for candidates before sending the offer.
    Binding,
    /// Initiator, offer sent.
    Requested,
    /// Initiator, answer received.
    Answered,
    /// Responder, request received.
    Incoming,
    /// Responder, answer sent.
    Replied,
    /// `start` called.
    Started,
    /// Over.
    Closed,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::New => "new",
            Phase::Binding => "binding",
            Phase::Requested => "requested",
            Phase::Answered => "answered",
            Phase::Incoming => "incoming",
            Phase::Replied => "replied",
            Phase::Started => "started",
            Phase::Closed => "closed",
        }
    }
}

#[derive(Debug)]
struct LocalStream {
    name: String,
    kind: StreamType,
    options: StreamOptions,
    state: StreamState,
    candidate: Option<Candidate>,
}

#[derive(Debug)]
struct CSession {
    peer: Jid,
    initiator: bool,
    sid: Option<String>,
    phase: Phase,
    streams: Vec<LocalStream>,
    offer: Option<RemoteDescription>,
    failed: bool,
}

/// What the Jingle handler and the Carrier manager hand each other: offers seen by the
/// handler, answers the handler gives `accept`.
#[derive(Debug, Default)]
struct Mailbox {
    offers: HashMap<String, Vec<Content>>,
    answers: HashMap<String, Vec<Content>>,
}

fn lock(m: &Mutex<Mailbox>) -> MutexGuard<'_, Mailbox> {
    // A poisoned mailbox only means a panic elsewhere; the maps stay consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The Jingle application handler for [`NS_CARRIER`].
struct CarrierHandler {
    mailbox: Arc<Mutex<Mailbox>>,
}

impl fmt::Debug for CarrierHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CarrierHandler")
    }
}

impl ApplicationHandler for CarrierHandler {
    fn start(&mut self, _: &Session) -> Result<(), Reason> {
        Ok(())
    }

    fn accept(&mut self, session: &Session) -> Result<Vec<Content>, Reason> {
        lock(&self.mailbox)
            .answers
            .remove(session.sid())
            .ok_or_else(|| Reason::new(ReasonCondition::FailedApplication))
    }

    fn on_action(&mut self, session: &Session, j: &Jingle) -> Verdict {
        match j.action {
            Action::SessionInitiate => {
                lock(&self.mailbox)
                    .offers
                    .insert(session.sid().to_owned(), j.contents.clone());
                Verdict::Ack
            }
            Action::SessionAccept => Verdict::Ack,
            _ => base_verdict(session, j),
        }
    }
}

/// Multi-stream sessions (Elastos Carrier's session manager), over a Jingle
/// [`SessionManager`] whose [`NS_CARRIER`] handler it registers.
#[derive(Debug)]
pub struct CarrierManager {
    jingle: SessionManager,
    mailbox: Arc<Mutex<Mailbox>>,
    sessions: HashMap<SessionId, CSession>,
    by_sid: HashMap<String, SessionId>,
    next: u64,
    events: VecDeque<CarrierEvent>,
}

impl CarrierManager {
    /// A manager for the local JID of `config`.
    pub fn new(config: Config) -> CarrierManager {
        let mut jingle = SessionManager::new(config);
        let mailbox = Arc::new(Mutex::new(Mailbox::default()));
        let mb = mailbox.clone();
        jingle.register(NS_CARRIER, move |_| {
            Box::new(CarrierHandler {
                mailbox: mb.clone(),
            })
        });
        CarrierManager {
            jingle,
            mailbox,
            sessions: HashMap::new(),
            by_sid: HashMap::new(),
            next: 1,
            events: VecDeque::new(),
        }
    }

    /// The Jingle manager underneath (read-only: its sessions, its JID).
    pub fn jingle(&self) -> &SessionManager {
        &self.jingle
    }

    /// The local JID.
    pub fn jid(&self) -> &Jid {
        self.jingle.jid()
    }

    /// The Jingle sid of a session, once it has one.
    pub fn sid(&self, session: SessionId) -> Option<&str> {
        self.sessions.get(&session)?.sid.as_deref()
    }

    /// The peer of a session.
    pub fn peer(&self, session: SessionId) -> Option<&Jid> {
        self.sessions.get(&session).map(|s| &s.peer)
    }

    /// A stream's state.
    pub fn stream_state(&self, session: SessionId, stream: StreamId) -> Option<StreamState> {
        let s = self.sessions.get(&session)?;
        s.streams.get(stream.0 as usize).map(|st| st.state)
    }

    /// A stream's negotiated options.
    pub fn stream_options(&self, session: SessionId, stream: StreamId) -> Option<StreamOptions> {
        let s = self.sessions.get(&session)?;
        s.streams.get(stream.0 as usize).map(|st| st.options)
    }

    /// Whether we requested the session (and so dial its streams).
    pub fn is_initiator(&self, session: SessionId) -> Option<bool> {
        self.sessions.get(&session).map(|s| s.initiator)
    }

    /// The local candidate of a stream (its token is what the dialer must present).
    pub fn local_candidate(&self, session: SessionId, stream: StreamId) -> Option<&Candidate> {
        let s = self.sessions.get(&session)?;
        s.streams.get(stream.0 as usize)?.candidate.as_ref()
    }

    /// Input: an IQ from the signaling channel.
    pub fn handle_iq(&mut self, iq: Iq, now: Instant) {
        self.jingle.handle_iq(iq, now);
        self.pump();
    }

    /// Output: IQs to send.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Iq> {
        self.pump();
        self.jingle.poll_transmit(now)
    }

    /// The next timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.jingle.poll_timeout()
    }

    /// A timer fired.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.jingle.handle_timeout(now);
        self.pump();
    }

    /// Output: the next event. A session is forgotten once its
    /// [`CarrierEvent::SessionClosed`] is polled (commands on it then fail with
    /// [`CarrierError::UnknownSession`]), so closed sessions never pile up.
    pub fn poll_event(&mut self) -> Option<CarrierEvent> {
        self.pump();
        let ev = self.events.pop_front()?;
        if let CarrierEvent::SessionClosed { session, .. } = &ev {
            self.forget(*session);
        }
        Some(ev)
    }

    /// How many sessions the manager holds (open ones, and closed ones whose
    /// `SessionClosed` was not polled yet).
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Creates an outgoing session with `peer` (Carrier's `newSession`).
    pub fn new_session(&mut self, peer: Jid) -> SessionId {
        self.insert(CSession {
            peer,
            initiator: true,
            sid: None,
            phase: Phase::New,
            streams: Vec::new(),
            offer: None,
            failed: false,
        })
    }

    fn insert(&mut self, s: CSession) -> SessionId {
        let id = SessionId(self.next);
        self.next += 1;
        self.sessions.insert(id, s);
        id
    }

    fn get(&mut self, session: SessionId) -> Result<&mut CSession, CarrierError> {
        self.sessions
            .get_mut(&session)
            .ok_or(CarrierError::UnknownSession(session))
    }

    /// Adds a stream (Carrier's `addStream(type, options)`); it is `Initialized` at once.
    /// On a session that answers a request the stream takes the first offered stream of
    /// the same type not yet taken, and its transport is prepared at once (`Bind`); on an
    /// outgoing session the transports are prepared by `request`.
    pub fn add_stream(
        &mut self,
        session: SessionId,
        kind: StreamType,
        options: StreamOptions,
    ) -> Result<StreamId, CarrierError> {
        let s = self.get(session)?;
        let options = options.normalized();
        let (name, options) = match s.phase {
            Phase::New => (format!("stream-{}", s.streams.len()), options),
            Phase::Incoming => {
                let offer = s.offer.as_ref().ok_or(CarrierError::InvalidState {
                    op: "add_stream",
                    phase: "incoming",
                })?;
                let taken: Vec<&str> = s.streams.iter().map(|l| l.name.as_str()).collect();
                let r = offer
                    .streams
                    .iter()
                    .find(|r| r.kind == kind && !taken.contains(&r.name.as_str()))
                    .ok_or(CarrierError::NoMatchingOffer(kind))?;
                // The answer cannot grant more than was offered: each option is the
                // conjunction of both sides'.
                let o = StreamOptions {
                    reliable: r.options.reliable && options.reliable,
                    multiplexing: r.options.multiplexing && options.multiplexing,
                    port_forwarding: r.options.port_forwarding && options.port_forwarding,
                };
                (r.name.clone(), o)
            }
            p => {
                return Err(CarrierError::InvalidState {
                    op: "add_stream",
                    phase: p.name(),
                });
            }
        };
        let responder = s.phase == Phase::Incoming;
        let stream = StreamId(s.streams.len() as u32);
        s.streams.push(LocalStream {
            name,
            kind,
            options,
            state: StreamState::Initialized,
            candidate: None,
        });
        self.stream_event(session, stream, StreamState::Initialized);
        if responder {
            self.events
                .push_back(CarrierEvent::Bind { session, stream });
        }
        Ok(stream)
    }

    /// Sends the session request (Carrier's `request`): the streams' transports are
    /// prepared (`Bind` events), and once every stream is `TransportReady` the offer goes
    /// out in a Jingle session-initiate.
    pub fn request(&mut self, session: SessionId) -> Result<(), CarrierError> {
        let s = self.get(session)?;
        if s.phase != Phase::New {
            return Err(CarrierError::InvalidState {
                op: "request",
                phase: s.phase.name(),
            });
        }
        if s.streams.is_empty() {
            return Err(CarrierError::NoStreams);
        }
        s.phase = Phase::Binding;
        let n = s.streams.len() as u32;
        for i in 0..n {
            self.events.push_back(CarrierEvent::Bind {
                session,
                stream: StreamId(i),
            });
        }
        Ok(())
    }

    /// I/O report: the stream's local transport is ready; the stream becomes
    /// `TransportReady`.
    pub fn set_local_candidate(
        &mut self,
        session: SessionId,
        stream: StreamId,
        candidate: Candidate,
    ) -> Result<(), CarrierError> {
        let s = self.get(session)?;
        let st = s
            .streams
            .get_mut(stream.0 as usize)
            .ok_or(CarrierError::UnknownStream(stream))?;
        if st.state != StreamState::Initialized {
            return Err(CarrierError::InvalidState {
                op: "set_local_candidate",
                phase: s.phase.name(),
            });
        }
        st.candidate = Some(candidate);
        st.state = StreamState::TransportReady;
        let all_ready = s
            .streams
            .iter()
            .all(|st| st.state == StreamState::TransportReady);
        let send_offer = s.phase == Phase::Binding && all_ready;
        self.stream_event(session, stream, StreamState::TransportReady);
        if send_offer {
            self.send_offer(session)?;
        }
        Ok(())
    }

    fn send_offer(&mut self, session: SessionId) -> Result<(), CarrierError> {
        let s = self.get(session)?;
        let contents = s
            .streams
            .iter()
            .map(|st| encode(st, Creator::Initiator))
            .collect();
        let peer = s.peer.clone();
        let sid = self.jingle.start(peer, contents)?;
        let s = self.get(session)?;
        s.sid = Some(sid.clone());
        s.phase = Phase::Requested;
        self.by_sid.insert(sid, session);
        Ok(())
    }

    /// Answers a session request (Carrier's `replyRequest(status, reason)`): status 0
    /// accepts with the streams added so far (each must be `TransportReady`); any other
    /// status declines, carrying the status and the reason text to the peer.
    pub fn reply_request(
        &mut self,
        session: SessionId,
        status: i32,
        reason: Option<&str>,
    ) -> Result<(), CarrierError> {
        let s = self.get(session)?;
        if s.phase != Phase::Incoming {
            return Err(CarrierError::InvalidState {
                op: "reply_request",
                phase: s.phase.name(),
            });
        }
        let sid = s.sid.clone().unwrap_or_default();
        if status != 0 {
            // XEP-0166 §6.7: a responder that declines terminates with reason `decline`.
            let mut r = Reason::new(ReasonCondition::Decline);
            r.text = reason.map(str::to_owned);
            r.extensions
                .push(Element::new("status", NS_CARRIER).with_attr("code", status.to_string()));
            self.jingle.end(&sid, Some(r.clone()), false)?;
            // Over for us too: streams added so far close, and `SessionClosed` reports
            // it (and lets the session be forgotten).
            self.finish(session, StreamState::Closed, Some(r));
            return Ok(());
        }
        if s.streams.is_empty() {
            return Err(CarrierError::NoStreams);
        }
        if let Some(i) = s
            .streams
            .iter()
            .position(|st| st.state != StreamState::TransportReady)
        {
            return Err(CarrierError::NotTransportReady(StreamId(i as u32)));
        }
        let contents = s
            .streams
            .iter()
            .map(|st| encode(st, Creator::Initiator))
            .collect();
        s.phase = Phase::Replied;
        lock(&self.mailbox).answers.insert(sid.clone(), contents);
        self.jingle.accept(&sid)?;
        Ok(())
    }

    /// Starts the session with the peer's description (Carrier's `start(sdp)`): the
    /// offer on the responder, the answer on the initiator. Refused unless every stream is
    /// `TransportReady`. Streams the answer did not accept become `Deactivated`; the
    /// others `Connecting` (the initiator dials, the responder expects).
    pub fn start(
        &mut self,
        session: SessionId,
        remote: &RemoteDescription,
    ) -> Result<(), CarrierError> {
        let s = self.get(session)?;
        let ok = matches!(
            (s.initiator, s.phase),
            (true, Phase::Answered) | (false, Phase::Replied)
        );
        if !ok {
            return Err(CarrierError::InvalidState {
                op: "start",
                phase: s.phase.name(),
            });
        }
        if let Some(i) = s
            .streams
            .iter()
            .position(|st| st.state != StreamState::TransportReady)
        {
            return Err(CarrierError::NotTransportReady(StreamId(i as u32)));
        }
        s.phase = Phase::Started;
        let initiator = s.initiator;
        let plan: Vec<(StreamId, Option<RemoteStream>, StreamOptions)> = s
            .streams
            .iter()
            .enumerate()
            .map(|(i, st)| {
                (
                    StreamId(i as u32),
                    remote.stream(&st.name).cloned(),
                    st.options,
                )
            })
            .collect();
        for (stream, r, local) in plan {
            match r {
                None => self.set_state(session, stream, StreamState::Deactivated),
                Some(r) => {
                    let options = StreamOptions {
                        reliable: local.reliable && r.options.reliable,
                        multiplexing: local.multiplexing && r.options.multiplexing,
                        port_forwarding: local.port_forwarding && r.options.port_forwarding,
                    };
                    if let Some(st) = self
                        .sessions
                        .get_mut(&session)
                        .and_then(|s| s.streams.get_mut(stream.0 as usize))
                    {
                        st.options = options;
                    }
                    self.set_state(session, stream, StreamState::Connecting);
                    self.events.push_back(if initiator {
                        CarrierEvent::Connect {
                            session,
                            stream,
                            remote: r.candidate,
                            options,
                        }
                    } else {
                        CarrierEvent::Expect {
                            session,
                            stream,
                            options,
                        }
                    });
                }
            }
        }
        self.check_done(session);
        Ok(())
    }

    /// I/O report: the stream's transport is connected.
    pub fn stream_connected(
        &mut self,
        session: SessionId,
        stream: StreamId,
    ) -> Result<(), CarrierError> {
        let s = self.get(session)?;
        let st = s
            .streams
            .get(stream.0 as usize)
            .ok_or(CarrierError::UnknownStream(stream))?;
        if st.state != StreamState::Connecting {
            return Err(CarrierError::InvalidState {
                op: "stream_connected",
                phase: s.phase.name(),
            });
        }
        self.set_state(session, stream, StreamState::Connected);
        Ok(())
    }

    /// I/O report: the stream's transport ended, gracefully (`Closed`) or not (`Failed`:
    /// a connect failure, a reset, the peer vanished). When no stream is left the
    /// session ends (`connectivity-error` if any stream failed).
    pub fn stream_ended(
        &mut self,
        session: SessionId,
        stream: StreamId,
        graceful: bool,
    ) -> Result<(), CarrierError> {
        let s = self.get(session)?;
        let st = s
            .streams
            .get(stream.0 as usize)
            .ok_or(CarrierError::UnknownStream(stream))?;
        if st.state.is_final() {
            return Ok(());
        }
        if !graceful {
            s.failed = true;
        }
        let state = if graceful {
            StreamState::Closed
        } else {
            StreamState::Failed
        };
        self.set_state(session, stream, state);
        self.check_done(session);
        Ok(())
    }

    /// Closes a session (Carrier's `close`): a session-terminate (`success`) goes to the
    /// peer and every stream not yet final becomes `Closed`.
    pub fn close_session(&mut self, session: SessionId) -> Result<(), CarrierError> {
        let s = self.get(session)?;
        if s.phase == Phase::Closed {
            return Ok(());
        }
        if let Some(sid) = s.sid.clone() {
            // The Jingle session may already be gone (the peer ended it first).
            let _ = self.jingle.end(&sid, None, false);
        }
        self.finish(session, StreamState::Closed, None);
        Ok(())
    }

    /// Forgets a session at once, without closing it (sessions are forgotten on their
    /// own once their `SessionClosed` is polled; this is for one the application drops
    /// before that, e.g. one it created and never requested). Its Jingle session, if
    /// still live, ends with a session-terminate to the peer; no events follow.
    pub fn remove_session(&mut self, session: SessionId) {
        if let Some(sid) = self.sessions.get(&session).and_then(|s| s.sid.clone()) {
            // The Jingle session may be gone already (ended by the peer).
            let _ = self.jingle.end(&sid, None, false);
        }
        self.forget(session);
    }

    fn forget(&mut self, session: SessionId) {
        if let Some(s) = self.sessions.remove(&session)
            && let Some(sid) = s.sid
        {
            self.by_sid.remove(&sid);
            let mut mb = lock(&self.mailbox);
            mb.offers.remove(&sid);
            mb.answers.remove(&sid);
        }
    }

    fn check_done(&mut self, session: SessionId) {
        let Some(s) = self.sessions.get(&session) else {
            return;
        };
        if s.phase != Phase::Started || !s.streams.iter().all(|st| st.state.is_final()) {
            return;
        }
        let cond = if s.failed {
            ReasonCondition::ConnectivityError
        } else {
            ReasonCondition::Success
        };
        let reason = Reason::new(cond);
        if let Some(sid) = s.sid.clone() {
            let _ = self.jingle.end(&sid, Some(reason.clone()), false);
        }
        self.finish(session, StreamState::Closed, Some(reason));
    }

    fn finish(&mut self, session: SessionId, state: StreamState, reason: Option<Reason>) {
        let Some(s) = self.sessions.get_mut(&session) else {
            return;
        };
        if s.phase == Phase::Closed {
            return;
        }
        s.phase = Phase::Closed;
        let open: Vec<StreamId> = s
            .streams
            .iter()
            .enumerate()
            .filter(|(_, st)| !st.state.is_final())
            .map(|(i, _)| StreamId(i as u32))
            .collect();
        for stream in open {
            self.set_state(session, stream, state);
        }
        self.events
            .push_back(CarrierEvent::SessionClosed { session, reason });
    }

    fn set_state(&mut self, session: SessionId, stream: StreamId, state: StreamState) {
        if let Some(st) = self
            .sessions
            .get_mut(&session)
            .and_then(|s| s.streams.get_mut(stream.0 as usize))
        {
            st.state = state;
        }
        self.stream_event(session, stream, state);
    }

    fn stream_event(&mut self, session: SessionId, stream: StreamId, state: StreamState) {
        self.events.push_back(CarrierEvent::StreamState {
            session,
            stream,
            state,
        });
    }

    /// Turns the Jingle manager's events into Carrier events.
    fn pump(&mut self) {
        while let Some(e) = self.jingle.poll_event() {
            match e {
                jingle::Event::Incoming { sid, peer, .. } => self.on_incoming(sid.into(), peer),
                jingle::Event::Received { sid, jingle }
                    if jingle.action == Action::SessionAccept =>
                {
                    self.on_answer(&sid, &jingle.contents);
                }
                jingle::Event::Terminated {
                    sid,
                    reason,
                    by_peer,
                    ..
                } => self.on_terminated(&sid, reason.map(|r| *r), by_peer),
                _ => {}
            }
        }
    }

    fn on_incoming(&mut self, sid: String, peer: Jid) {
        let contents = lock(&self.mailbox).offers.remove(&sid);
        let Some(contents) = contents else {
            return;
        };
        let Some(offer) = decode_description(&sid, &contents) else {
            // An offer we cannot read: terminate it (XEP-0166 §7.4: `failed-application`,
            // "the session failed because of an application-specific problem").
            let _ = self.jingle.end(
                &sid,
                Some(Reason::new(ReasonCondition::FailedApplication)),
                false,
            );
            return;
        };
        let session = self.insert(CSession {
            peer: peer.clone(),
            initiator: false,
            sid: Some(sid.clone()),
            phase: Phase::Incoming,
            streams: Vec::new(),
            offer: Some(offer.clone()),
            failed: false,
        });
        self.by_sid.insert(sid, session);
        self.events.push_back(CarrierEvent::SessionRequest {
            session,
            peer,
            offer,
        });
    }

    fn on_answer(&mut self, sid: &str, contents: &[Content]) {
        let Some(&session) = self.by_sid.get(sid) else {
            return;
        };
        let Some(s) = self.sessions.get_mut(&session) else {
            return;
        };
        if s.phase != Phase::Requested {
            return;
        }
        s.phase = Phase::Answered;
        let answer = decode_description(sid, contents);
        let (status, reason) = if answer.is_some() {
            (0, None)
        } else {
            (-1, Some("unreadable answer".to_owned()))
        };
        self.events.push_back(CarrierEvent::RequestCompleted {
            session,
            status,
            reason,
            answer,
        });
    }

    fn on_terminated(&mut self, sid: &str, reason: Option<Reason>, by_peer: bool) {
        // An initiate the Jingle layer refused (a lost tie-break) leaves its offer behind.
        lock(&self.mailbox).offers.remove(sid);
        let Some(&session) = self.by_sid.get(sid) else {
            return;
        };
        let Some(s) = self.sessions.get(&session) else {
            return;
        };
        if s.phase == Phase::Requested {
            // Refused (or never answered): the request completes with a non-zero status.
            let status = reason
                .as_ref()
                .and_then(|r| {
                    r.extensions
                        .iter()
                        .find(|e| e.name == "status" && e.namespace == NS_CARRIER)
                })
                .and_then(|e| e.attr("code"))
                .and_then(|c| c.parse().ok())
                .unwrap_or(-1);
            let text = reason
                .as_ref()
                .and_then(|r| r.text.clone())
                .or_else(|| reason.as_ref().map(|r| r.condition.as_str().to_owned()));
            self.events.push_back(CarrierEvent::RequestCompleted {
                session,
                status,
                reason: text,
                answer: None,
            });
        }
        // A peer that vanished shows up as a timeout or a connectivity error: streams
        // still open fail; an orderly end closes them.
        let failed = reason.as_ref().is_some_and(|r| {
            matches!(
                r.condition,
                ReasonCondition::Timeout | ReasonCondition::ConnectivityError
            )
        }) || (!by_peer && reason.is_none());
        let state = if failed {
            StreamState::Failed
        } else {
            StreamState::Closed
        };
        self.finish(session, state, reason);
    }
}

fn flag(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

fn encode(st: &LocalStream, creator: Creator) -> Content {
    let mut c = Content::new(creator, st.name.clone());
    c.description = Some(Description::Raw(
        Element::new("description", NS_CARRIER)
            .with_attr("type", st.kind.as_str())
            .with_attr("reliable", flag(st.options.reliable))
            .with_attr("multiplexing", flag(st.options.multiplexing))
            .with_attr("port-forwarding", flag(st.options.port_forwarding)),
    ));
    if let Some(cand) = &st.candidate {
        c.transport = Some(Transport::Raw(
            Element::new("transport", NS_CARRIER_TCP)
                .with_attr("host", cand.addr.ip().to_string())
                .with_attr("port", cand.addr.port().to_string())
                .with_attr("token", cand.token.clone()),
        ));
    }
    c
}

fn raw_description(c: &Content) -> Option<&Element> {
    match c.description.as_ref()? {
        Description::Raw(el) if el.namespace == NS_CARRIER => Some(el),
        _ => None,
    }
}

fn raw_transport(c: &Content) -> Option<&Element> {
    match c.transport.as_ref()? {
        Transport::Raw(el) if el.namespace == NS_CARRIER_TCP => Some(el),
        _ => None,
    }
}

/// Decodes the Carrier streams of a session-initiate or session-accept; `None` when a
/// Carrier content is malformed or there is none.
pub fn decode_description(sid: &str, contents: &[Content]) -> Option<RemoteDescription> {
    let mut streams = Vec::new();
    for c in contents {
        let Some(d) = raw_description(c) else {
            continue;
        };
        let t = raw_transport(c)?;
        let kind = StreamType::from_name(d.attr("type")?)?;
        let b = |n: &str| d.attr(n) == Some("true");
        let ip: std::net::IpAddr = t.attr("host")?.parse().ok()?;
        let port: u16 = t.attr("port")?.parse().ok()?;
        streams.push(RemoteStream {
            name: c.name.to_string(),
            kind,
            options: StreamOptions {
                reliable: b("reliable"),
                multiplexing: b("multiplexing"),
                port_forwarding: b("port-forwarding"),
            },
            candidate: Candidate {
                addr: SocketAddr::new(ip, port),
                token: t.attr("token")?.to_owned(),
            },
        });
    }
    (!streams.is_empty()).then_some(RemoteDescription {
        sid: sid.to_owned(),
        streams,
    })
}
