//! The sans-IO custom-session layer: AIMCC custom sessions on top of a Jingle
//! [`SessionManager`]. Commands only queue work; outputs are IQs
//! ([`CustomSessions::poll_transmit`]), events ([`CustomSessions::poll_event`]) and
//! transport actions for the driver ([`CustomSessions::poll_action`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use huddle_jingle::{Action, Creator, Iq, IqType, Jid, Reason, ReasonCondition};
use huddle_transport::message::frame::MAX_PAYLOAD;
use thiserror::Error;

use super::description::{
    CapabilityUuid, CustomDescription, CustomHandler, Mode, NS, TransportInfo, data_info,
    parse_data_info,
};
use crate::jingle::{self, Config, RequestFailure, SessionError, SessionManager};

/// How long an invitation waits for its answer (accept or reject) by default.
pub const DEFAULT_PROPOSAL_TIMEOUT: Duration = Duration::from_secs(60);

/// A custom session, local to one [`CustomSessions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CustomId(pub u64);

/// One `send_data` call; its [`Event::SendResult`] carries the same id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SendId(pub u64);

/// A custom session's state (AIMCC's secondary-session states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CustomState {
    /// Created locally, nobody invited yet (mode and name can still change).
    Created,
    /// Invitations sent, nobody accepted yet.
    Inviting,
    /// A proposal from a peer waits for `accept` or `reject`
    /// (`AccSecondarySessionState_ReceivedProposal`).
    ReceivedProposal,
    /// At least one participant accepted (`AccSecondarySessionState_Online`).
    Online,
    /// Over (final).
    Ended,
}

/// Which end of the session this side is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Created the session and invites (the Message-mode host, the Streams listener).
    Owner,
    /// Received the proposal.
    Invitee,
}

/// Why an invitation did not lead to a participant.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum InviteFailure {
    /// The invitee rejected the proposal (`decline`).
    Rejected,
    /// The proposal was cancelled (by us, `cancel_proposal`, or by the session ending).
    Cancelled,
    /// The invitee ended the proposal with another reason, or the signaling failed.
    Failed(Option<Reason>),
}

/// Why a send failed.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SendFailure {
    /// The peer answered the data IQ with an error, or it timed out.
    Signaling(RequestFailure),
    /// The session ended before the data was delivered.
    SessionEnded,
    /// The Message-mode transport refused it (recipient gone, not joined yet, ...).
    Transport(String),
}

/// Something the application should know (AIMCC's custom-session events).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A proposal arrived (`OnNewSecondarySession`); a `StateChanged` to
    /// `ReceivedProposal` follows. Check `uuid`, then `accept` or `reject`.
    NewSession {
        /// The session.
        id: CustomId,
        /// Who proposes it.
        from: Jid,
        /// Its capability.
        uuid: CapabilityUuid,
        /// Its mode.
        mode: Mode,
        /// Its name (Message mode).
        name: Option<String>,
    },
    /// An invitation was answered (`OnInviteResult`).
    InviteResult {
        /// The session.
        id: CustomId,
        /// The invitee.
        peer: Jid,
        /// `Ok` when it accepted.
        result: Result<(), InviteFailure>,
    },
    /// A participant joined (`OnParticipantJoined`).
    ParticipantJoined {
        /// The session.
        id: CustomId,
        /// Who.
        peer: Jid,
    },
    /// A participant left (`OnParticipantLeft`).
    ParticipantLeft {
        /// The session.
        id: CustomId,
        /// Who.
        peer: Jid,
        /// Whether the owner ejected it.
        ejected: bool,
    },
    /// The session's state changed (`OnSecondarySessionStateChange`).
    StateChanged {
        /// The session.
        id: CustomId,
        /// The new state.
        state: CustomState,
    },
    /// A `send_data` finished (`OnCustomSendResult`): exactly one per accepted send.
    SendResult {
        /// The session.
        id: CustomId,
        /// The send.
        send: SendId,
        /// `Ok` when delivered to the transport or acknowledged by the peer.
        result: Result<(), SendFailure>,
    },
    /// Data arrived (`OnCustomDataReceived`).
    DataReceived {
        /// The session.
        id: CustomId,
        /// The sender.
        from: Jid,
        /// The data.
        data: Bytes,
    },
}

/// Work for the driver's transports (Message mode).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportAction {
    /// Host: admit `name` (a participant's JID).
    HostInvite {
        /// The session.
        id: CustomId,
        /// The participant's name.
        name: String,
    },
    /// Host: withdraw the invitation of `name`.
    HostCancelInvite {
        /// The session.
        id: CustomId,
        /// The participant's name.
        name: String,
    },
    /// Host: eject `name`.
    HostEject {
        /// The session.
        id: CustomId,
        /// The participant's name.
        name: String,
    },
    /// Participant: connect to the host and join as `name`.
    Join {
        /// The session.
        id: CustomId,
        /// Where the host listens.
        addr: std::net::SocketAddr,
        /// Our name (our JID).
        name: String,
    },
    /// Send a message; report with [`CustomSessions::handle_send_result`].
    Send {
        /// The session.
        id: CustomId,
        /// The send.
        send: SendId,
        /// The recipient's name, `None` for everyone.
        to: Option<String>,
        /// The payload (≤ 64 KiB).
        data: Bytes,
    },
    /// Tear down the session's transport (host: end for everyone; participant: leave).
    Close {
        /// The session.
        id: CustomId,
    },
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CustomError {
    /// No such session.
    #[error("unknown custom session {0:?}")]
    UnknownSession(CustomId),
    /// The call does not apply to the session's mode (AIMCC Technote 8's
    /// applicability table).
    #[error("{call} does not apply in {mode:?} mode")]
    NotApplicable {
        /// The refused call.
        call: &'static str,
        /// The session's mode.
        mode: Mode,
    },
    /// The call does not fit the session's state or role.
    #[error("{call} is not possible in state {state:?}")]
    InvalidState {
        /// The refused call.
        call: &'static str,
        /// The session's state.
        state: CustomState,
    },
    /// No capability with this UUID was announced.
    #[error("capability {0} was not announced")]
    UnknownCapability(CapabilityUuid),
    /// Offer-Answer and Streams sessions have exactly two participants.
    #[error("{0:?} mode has exactly two participants")]
    TooManyParticipants(Mode),
    /// The JID is not a participant or invitee of the session.
    #[error("{0} is not in the session")]
    UnknownParticipant(Jid),
    /// Message mode carries at most 64 KiB per message.
    #[error("{len} bytes exceed the 64 KiB Message-mode limit")]
    TooLarge {
        /// The refused length.
        len: usize,
    },
    /// Streams and Message modes need the owner's transport before inviting.
    #[error("no transport address set")]
    MissingTransport,
    /// The Jingle layer refused.
    #[error(transparent)]
    Jingle(#[from] SessionError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PeerState {
    Invited,
    Joined,
}

#[derive(Debug)]
struct Peer {
    jid: Jid,
    sid: String,
    state: PeerState,
}

/// An Offer-Answer data IQ waiting for its reply.
#[derive(Debug)]
struct DataIq {
    /// The IQ id (`SessionManager::send_info`'s return value).
    iq: String,
    /// When the Jingle layer gives up on the reply: set once the IQ is transmitted,
    /// exactly as the Jingle manager arms its own reply timer.
    deadline: Option<Instant>,
}

#[derive(Debug)]
struct Custom {
    role: Role,
    uuid: CapabilityUuid,
    mode: Mode,
    name: Option<String>,
    state: CustomState,
    transport: Option<TransportInfo>,
    /// One Jingle session per invitee (owner) or the one with the owner (invitee).
    peers: Vec<Peer>,
    /// Message mode: the names the transport reports present (ourselves excluded).
    members: BTreeSet<String>,
    /// Offer-Answer: the data IQs in flight (any number at once), by send. Each is
    /// matched to its reply by IQ id (see [`CustomSessions::data_iqs`]).
    oa_in_flight: BTreeMap<SendId, DataIq>,
    /// Message mode: sends handed to the driver and not yet reported.
    transport_sends: HashSet<SendId>,
}

/// The custom sessions of one local JID (sans-IO).
#[derive(Debug)]
pub struct CustomSessions {
    jingle: SessionManager,
    capabilities: BTreeSet<CapabilityUuid>,
    sessions: HashMap<CustomId, Custom>,
    by_sid: HashMap<String, CustomId>,
    /// Descriptions of inbound session-initiates, by sid, until `Incoming` is seen.
    offers: HashMap<String, Result<CustomDescription, ()>>,
    events: VecDeque<Event>,
    actions: VecDeque<TransportAction>,
    next_id: u64,
    next_send: u64,
    proposal_timeout: Duration,
    /// Invitations whose answer timer starts at the next `poll_transmit`.
    unarmed: Vec<(CustomId, String)>,
    /// Answer deadlines of invitations.
    deadlines: BTreeSet<(Instant, CustomId, String)>,
    /// Offer-Answer data IQs in flight, by IQ id: which session and send a reply is for.
    data_iqs: HashMap<String, (CustomId, SendId)>,
    /// The data IQ whose reply the Jingle layer is handling right now (set only inside
    /// `handle_iq`): the Jingle manager reports a reply as `RequestAcknowledged` /
    /// `RequestFailed` without the IQ id, and a reply produces at most one such event,
    /// so the event seen while handling it is that reply's.
    replying: Option<String>,
    /// `now` of the `handle_timeout` call in progress (to tell which data IQs timed out).
    timeout_now: Option<Instant>,
}

impl CustomSessions {
    /// Custom sessions over a new Jingle manager for `config` (the custom handler is
    /// registered for [`NS`]).
    pub fn new(config: Config) -> CustomSessions {
        let mut jingle = SessionManager::new(config);
        register(&mut jingle);
        CustomSessions {
            jingle,
            capabilities: BTreeSet::new(),
            sessions: HashMap::new(),
            by_sid: HashMap::new(),
            offers: HashMap::new(),
            events: VecDeque::new(),
            actions: VecDeque::new(),
            next_id: 0,
            next_send: 0,
            proposal_timeout: DEFAULT_PROPOSAL_TIMEOUT,
            unarmed: Vec::new(),
            deadlines: BTreeSet::new(),
            data_iqs: HashMap::new(),
            replying: None,
            timeout_now: None,
        }
    }

    /// How long an invitation waits for accept or reject before it fails with reason
    /// `timeout` ([`DEFAULT_PROPOSAL_TIMEOUT`] by default). The Jingle layer only bounds
    /// the wait for the IQ reply; a peer that acknowledged the proposal and then
    /// vanished (or whose answer was lost) would otherwise leave it pending forever.
    pub fn set_proposal_timeout(&mut self, timeout: Duration) {
        self.proposal_timeout = timeout;
    }

    /// The Jingle manager underneath (read-only).
    pub fn jingle(&self) -> &SessionManager {
        &self.jingle
    }

    /// Our JID.
    pub fn jid(&self) -> &Jid {
        self.jingle.jid()
    }

    // ------------------------------------------------------------- capabilities

    /// Announces a capability (AIMCC's `AddCapabilities`): proposals for it are
    /// offered to the application; proposals for others are declined with
    /// `unsupported-applications`.
    pub fn add_capability(&mut self, uuid: CapabilityUuid) {
        self.capabilities.insert(uuid);
    }

    /// Withdraws a capability.
    pub fn remove_capability(&mut self, uuid: CapabilityUuid) {
        self.capabilities.remove(&uuid);
    }

    /// The announced capabilities (what service discovery should advertise).
    pub fn capabilities(&self) -> impl Iterator<Item = &CapabilityUuid> {
        self.capabilities.iter()
    }

    // --------------------------------------------------------------- properties

    fn get(&self, id: CustomId) -> Result<&Custom, CustomError> {
        self.sessions
            .get(&id)
            .ok_or(CustomError::UnknownSession(id))
    }

    fn get_mut(&mut self, id: CustomId) -> Result<&mut Custom, CustomError> {
        self.sessions
            .get_mut(&id)
            .ok_or(CustomError::UnknownSession(id))
    }

    /// The session's capability UUID (what an invitee checks before accepting).
    pub fn uuid(&self, id: CustomId) -> Result<CapabilityUuid, CustomError> {
        Ok(self.get(id)?.uuid)
    }

    /// The session's mode.
    pub fn mode(&self, id: CustomId) -> Result<Mode, CustomError> {
        Ok(self.get(id)?.mode)
    }

    /// The session's state.
    pub fn state(&self, id: CustomId) -> Result<CustomState, CustomError> {
        Ok(self.get(id)?.state)
    }

    /// Our role in the session.
    pub fn role(&self, id: CustomId) -> Result<Role, CustomError> {
        Ok(self.get(id)?.role)
    }

    /// The session's name. AIMCC Technote 8: the name property applies in Message
    /// mode only.
    pub fn name(&self, id: CustomId) -> Result<Option<&str>, CustomError> {
        let c = self.get(id)?;
        applies(c, "name", &[Mode::Message])?;
        Ok(c.name.as_deref())
    }

    /// The owner's transport (Streams and Message modes), once known.
    pub fn transport(&self, id: CustomId) -> Result<Option<&TransportInfo>, CustomError> {
        let c = self.get(id)?;
        applies(c, "transport", &[Mode::Streams, Mode::Message])?;
        Ok(c.transport.as_ref())
    }

    /// The participants who joined (Message mode: as the transport reports them).
    pub fn participants(&self, id: CustomId) -> Result<Vec<Jid>, CustomError> {
        let c = self.get(id)?;
        Ok(if c.mode == Mode::Message {
            c.members.iter().filter_map(|n| Jid::new(n).ok()).collect()
        } else {
            c.peers
                .iter()
                .filter(|p| p.state == PeerState::Joined)
                .map(|p| p.jid.clone())
                .collect()
        })
    }

    /// How many sends of the session still wait for their [`Event::SendResult`]
    /// (Offer-Answer: data IQs in flight; Message: messages with the transport).
    pub fn pending_sends(&self, id: CustomId) -> Result<usize, CustomError> {
        let c = self.get(id)?;
        Ok(c.oa_in_flight.len() + c.transport_sends.len())
    }

    // ----------------------------------------------------------------- commands

    /// Creates a session for an announced capability (AIMCC's
    /// `CreateCustomSession`), in Offer-Answer mode until [`set_mode`](Self::set_mode).
    pub fn create(&mut self, uuid: CapabilityUuid) -> Result<CustomId, CustomError> {
        if !self.capabilities.contains(&uuid) {
            return Err(CustomError::UnknownCapability(uuid));
        }
        let id = self.new_id();
        self.sessions
            .insert(id, Custom::new(Role::Owner, uuid, Mode::OfferAnswer));
        Ok(id)
    }

    fn new_id(&mut self) -> CustomId {
        self.next_id += 1;
        CustomId(self.next_id)
    }

    /// Chooses the mode (before the first invitation).
    pub fn set_mode(&mut self, id: CustomId, mode: Mode) -> Result<(), CustomError> {
        let c = self.get_mut(id)?;
        created(c, "set_mode")?;
        c.mode = mode;
        if mode != Mode::Message {
            c.name = None;
        }
        Ok(())
    }

    /// Names the session (before the first invitation). AIMCC Technote 8: the name
    /// property applies in Message mode only.
    pub fn set_name(&mut self, id: CustomId, name: impl Into<String>) -> Result<(), CustomError> {
        let c = self.get_mut(id)?;
        applies(c, "set_name", &[Mode::Message])?;
        created(c, "set_name")?;
        c.name = Some(name.into());
        Ok(())
    }

    /// Sets where the owner's transport listens and, in Streams mode, the session
    /// secret (the driver binds the listener and draws the secret). Offer-Answer mode
    /// has no transport of its own.
    pub fn set_transport(&mut self, id: CustomId, info: TransportInfo) -> Result<(), CustomError> {
        let c = self.get_mut(id)?;
        applies(c, "set_transport", &[Mode::Streams, Mode::Message])?;
        created(c, "set_transport")?;
        c.transport = Some(info);
        Ok(())
    }

    /// Invites `peer` (AIMCC's `Invite`): a Jingle session-initiate carrying the
    /// custom description. Offer-Answer and Streams sessions take one invitee.
    pub fn invite(&mut self, id: CustomId, peer: Jid) -> Result<(), CustomError> {
        let c = self.get(id)?;
        if c.role != Role::Owner
            || !matches!(
                c.state,
                CustomState::Created | CustomState::Inviting | CustomState::Online
            )
        {
            return Err(CustomError::InvalidState {
                call: "invite",
                state: c.state,
            });
        }
        // AIMCC Technote 8: Offer-Answer and Streams modes are between two participants.
        if c.mode != Mode::Message && !c.peers.is_empty() {
            return Err(CustomError::TooManyParticipants(c.mode));
        }
        if c.mode != Mode::OfferAnswer && c.transport.is_none() {
            return Err(CustomError::MissingTransport);
        }
        if c.peers.iter().any(|p| p.jid == peer) {
            return Err(CustomError::InvalidState {
                call: "invite (already invited)",
                state: c.state,
            });
        }
        let desc = CustomDescription {
            uuid: c.uuid,
            mode: c.mode,
            name: c.name.clone(),
            transport: c.transport.clone(),
        };
        let mode = c.mode;
        let sid = self
            .jingle
            .start(peer.clone(), vec![desc.to_content(Creator::Initiator)])?;
        if mode == Mode::Message {
            self.actions.push_back(TransportAction::HostInvite {
                id,
                name: peer.to_string(),
            });
        }
        self.by_sid.insert(sid.clone(), id);
        self.unarmed.push((id, sid.clone()));
        let c = self.get_mut(id)?;
        c.peers.push(Peer {
            jid: peer,
            sid,
            state: PeerState::Invited,
        });
        if c.state == CustomState::Created {
            self.set_state(id, CustomState::Inviting);
        }
        Ok(())
    }

    /// Accepts a proposal (AIMCC's `Accept`).
    pub fn accept(&mut self, id: CustomId) -> Result<(), CustomError> {
        let c = self.get(id)?;
        if c.role != Role::Invitee || c.state != CustomState::ReceivedProposal {
            return Err(CustomError::InvalidState {
                call: "accept",
                state: c.state,
            });
        }
        let sid = c.peers[0].sid.clone();
        self.jingle.accept(&sid)?;
        Ok(())
    }

    /// Rejects a proposal (AIMCC's `Reject`): a session-terminate with `decline`.
    pub fn reject(&mut self, id: CustomId) -> Result<(), CustomError> {
        let c = self.get(id)?;
        if c.role != Role::Invitee || c.state != CustomState::ReceivedProposal {
            return Err(CustomError::InvalidState {
                call: "reject",
                state: c.state,
            });
        }
        let sid = c.peers[0].sid.clone();
        self.jingle.decline(&sid)?;
        self.pump();
        Ok(())
    }

    /// Withdraws an invitation not answered yet (AIMCC's `CancelProposal`; Message mode
    /// only, per Technote 8).
    pub fn cancel_proposal(&mut self, id: CustomId, peer: &Jid) -> Result<(), CustomError> {
        let c = self.get(id)?;
        applies(c, "cancel_proposal", &[Mode::Message])?;
        let p = c
            .peers
            .iter()
            .find(|p| p.jid == *peer && p.state == PeerState::Invited)
            .ok_or_else(|| CustomError::UnknownParticipant(peer.clone()))?;
        let sid = p.sid.clone();
        self.actions.push_back(TransportAction::HostCancelInvite {
            id,
            name: peer.to_string(),
        });
        self.jingle.cancel(&sid)?;
        self.pump();
        Ok(())
    }

    /// Removes a participant (AIMCC's `Eject`; Message mode only, per Technote 8): its
    /// Jingle session ends and the host drops it from the message session.
    pub fn eject(&mut self, id: CustomId, peer: &Jid) -> Result<(), CustomError> {
        let c = self.get(id)?;
        applies(c, "eject", &[Mode::Message])?;
        if c.role != Role::Owner {
            return Err(CustomError::InvalidState {
                call: "eject",
                state: c.state,
            });
        }
        let p = c
            .peers
            .iter()
            .find(|p| p.jid == *peer && p.state == PeerState::Joined)
            .ok_or_else(|| CustomError::UnknownParticipant(peer.clone()))?;
        let sid = p.sid.clone();
        let name = peer.to_string();
        self.actions.push_back(TransportAction::HostEject {
            id,
            name: name.clone(),
        });
        let c = self.get_mut(id)?;
        if c.members.remove(&name) {
            self.events.push_back(Event::ParticipantLeft {
                id,
                peer: peer.clone(),
                ejected: true,
            });
        }
        let mut reason = Reason::new(ReasonCondition::Cancel);
        reason.text = Some("ejected".into());
        self.jingle.end(&sid, Some(reason), false)?;
        self.pump();
        Ok(())
    }

    /// Sends data (AIMCC's `SendData`; Offer-Answer and Message modes, per Technote 8).
    /// Offer-Answer: a Jingle session-info to the peer (`to` is ignored), sent at once
    /// however many are in flight; each is matched to its own IQ reply, so results come
    /// in the order the replies do. Message: to `to` or, with `None`, to everyone, at
    /// most 64 KiB. Every `Ok` ends in exactly one [`Event::SendResult`].
    pub fn send_data(
        &mut self,
        id: CustomId,
        to: Option<&Jid>,
        data: Bytes,
    ) -> Result<SendId, CustomError> {
        let c = self.get(id)?;
        applies(c, "send_data", &[Mode::OfferAnswer, Mode::Message])?;
        if c.state != CustomState::Online {
            return Err(CustomError::InvalidState {
                call: "send_data",
                state: c.state,
            });
        }
        // AIMCC Technote 8: "What is the maximum data size that can be sent in Message
        // mode? 64 KB."
        if c.mode == Mode::Message && data.len() > MAX_PAYLOAD {
            return Err(CustomError::TooLarge { len: data.len() });
        }
        self.next_send += 1;
        let send = SendId(self.next_send);
        let c = self.get_mut(id)?;
        match c.mode {
            Mode::Message => {
                c.transport_sends.insert(send);
                self.actions.push_back(TransportAction::Send {
                    id,
                    send,
                    to: to.map(ToString::to_string),
                    data,
                });
            }
            _ => self.send_oa(id, send, &data),
        }
        Ok(send)
    }

    /// Where the Streams-mode stream goes: the transport and whether this side accepts
    /// (owner) or connects (invitee). AIMCC Technote 8: `GetStream` applies in Streams
    /// mode only.
    pub fn stream_params(&self, id: CustomId) -> Result<(TransportInfo, Role), CustomError> {
        let c = self.get(id)?;
        applies(c, "stream", &[Mode::Streams])?;
        if c.state != CustomState::Online {
            return Err(CustomError::InvalidState {
                call: "stream",
                state: c.state,
            });
        }
        let t = c.transport.clone().ok_or(CustomError::MissingTransport)?;
        Ok((t, c.role))
    }

    /// Ends the session: every Jingle session ends (reason `success`), the transport
    /// closes.
    pub fn end(&mut self, id: CustomId) -> Result<(), CustomError> {
        let c = self.get(id)?;
        if c.state == CustomState::Ended {
            return Ok(());
        }
        let sids: Vec<String> = c.peers.iter().map(|p| p.sid.clone()).collect();
        for sid in sids {
            let _ = self.jingle.end(&sid, None, false);
        }
        self.pump();
        self.finish(id);
        Ok(())
    }

    // ------------------------------------------------------------------- inputs

    /// An IQ from the signaling channel.
    pub fn handle_iq(&mut self, iq: Iq, now: Instant) {
        if iq.kind == IqType::Set
            && let Some(j) = &iq.jingle
            && j.action == Action::SessionInitiate
            && let Some(d) = CustomDescription::from_contents(&j.contents)
        {
            self.offers.insert(j.sid.to_string(), d.map_err(|_| ()));
        }
        if matches!(iq.kind, IqType::Result | IqType::Error) && self.data_iqs.contains_key(&iq.id) {
            // Whatever the Jingle layer reported before belongs to earlier inputs.
            self.pump();
            self.replying = Some(iq.id.clone());
            self.jingle.handle_iq(iq, now);
            self.pump();
            self.replying = None;
            return;
        }
        self.jingle.handle_iq(iq, now);
        self.pump();
    }

    /// The Jingle layer's timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.pump();
        self.timeout_now = Some(now);
        self.jingle.handle_timeout(now);
        self.pump();
        self.timeout_now = None;
        while let Some(first) = self.deadlines.first() {
            if first.0 > now {
                break;
            }
            let Some((_, id, sid)) = self.deadlines.pop_first() else {
                break;
            };
            let still_invited = self.sessions.get(&id).is_some_and(|c| {
                c.peers
                    .iter()
                    .any(|p| p.sid == sid && p.state == PeerState::Invited)
            });
            if still_invited {
                // XEP-0166 §7.4: `timeout` — the proposal was not answered in time.
                let _ = self
                    .jingle
                    .end(&sid, Some(Reason::new(ReasonCondition::Timeout)), false);
                self.pump();
            }
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mine = self.deadlines.first().map(|d| d.0);
        match (self.jingle.poll_timeout(), mine) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next IQ to send. `now` also starts the answer timer of new invitations.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Iq> {
        for (id, sid) in self.unarmed.drain(..) {
            self.deadlines
                .insert((now + self.proposal_timeout, id, sid));
        }
        let iq = self.jingle.poll_transmit(now)?;
        if iq.kind == IqType::Set
            && let Some(&(id, send)) = self.data_iqs.get(&iq.id)
            && let Some(d) = self
                .sessions
                .get_mut(&id)
                .and_then(|c| c.oa_in_flight.get_mut(&send))
            && d.deadline.is_none()
        {
            // The Jingle manager arms its reply timer for this IQ now, with the same
            // `now` and timeout.
            d.deadline = Some(now + self.jingle.config().reply_timeout);
        }
        Some(iq)
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.pump();
        self.events.pop_front()
    }

    /// The next transport action for the driver.
    pub fn poll_action(&mut self) -> Option<TransportAction> {
        self.actions.pop_front()
    }

    /// The driver's report on a [`TransportAction::Send`].
    pub fn handle_send_result(&mut self, id: CustomId, send: SendId, result: Result<(), String>) {
        if let Some(c) = self.sessions.get_mut(&id)
            && c.transport_sends.remove(&send)
        {
            self.events.push_back(Event::SendResult {
                id,
                send,
                result: result.map_err(SendFailure::Transport),
            });
        }
    }

    /// The Message-mode transport reports `name` present (`joined`) or gone.
    pub fn handle_member(&mut self, id: CustomId, name: &str, joined: bool) {
        let me = self.jid().to_string();
        let Some(c) = self.sessions.get_mut(&id) else {
            return;
        };
        if name == me || c.mode != Mode::Message || c.state == CustomState::Ended {
            return;
        }
        let Ok(peer) = Jid::new(name) else { return };
        if joined {
            if c.members.insert(name.to_owned()) {
                self.events.push_back(Event::ParticipantJoined { id, peer });
            }
        } else if c.members.remove(name) {
            self.events.push_back(Event::ParticipantLeft {
                id,
                peer,
                ejected: false,
            });
        }
    }

    /// A Message-mode message arrived from `from` (a participant's name).
    pub fn handle_message(&mut self, id: CustomId, from: &str, data: Bytes) {
        if let Some(c) = self.sessions.get(&id)
            && c.state != CustomState::Ended
            && let Ok(from) = Jid::new(from)
        {
            self.events
                .push_back(Event::DataReceived { id, from, data });
        }
    }

    /// The Message-mode transport of `id` is gone (ejected, host ended, keep-alive
    /// timeout): the session ends.
    pub fn handle_transport_ended(&mut self, id: CustomId) {
        if self
            .sessions
            .get(&id)
            .is_some_and(|c| c.state != CustomState::Ended)
        {
            let _ = self.end(id);
        }
    }

    // ------------------------------------------------------------------ internal

    fn set_state(&mut self, id: CustomId, state: CustomState) {
        if let Some(c) = self.sessions.get_mut(&id)
            && c.state != state
            && c.state != CustomState::Ended
        {
            c.state = state;
            self.events.push_back(Event::StateChanged { id, state });
        }
    }

    /// Offer-Answer: the data goes out at once in its own session-info IQ.
    fn send_oa(&mut self, id: CustomId, send: SendId, data: &[u8]) {
        let Some(sid) = self
            .sessions
            .get(&id)
            .and_then(|c| c.peers.first())
            .map(|p| p.sid.clone())
        else {
            self.events.push_back(Event::SendResult {
                id,
                send,
                result: Err(SendFailure::SessionEnded),
            });
            return;
        };
        match self.jingle.send_info(&sid, Some(data_info(data))) {
            Ok(iq) => {
                self.data_iqs.insert(iq.clone(), (id, send));
                if let Some(c) = self.sessions.get_mut(&id) {
                    c.oa_in_flight.insert(send, DataIq { iq, deadline: None });
                }
            }
            Err(_) => self.events.push_back(Event::SendResult {
                id,
                send,
                result: Err(SendFailure::SessionEnded),
            }),
        }
    }

    /// Offer-Answer: the data IQ `iq` is over; its send gets its one result.
    fn oa_answered(&mut self, iq: &str, result: Result<(), SendFailure>) {
        let Some((id, send)) = self.data_iqs.remove(iq) else {
            return;
        };
        if let Some(c) = self.sessions.get_mut(&id)
            && c.oa_in_flight.remove(&send).is_some()
        {
            self.events
                .push_back(Event::SendResult { id, send, result });
        }
    }

    /// Offer-Answer: a data IQ of session `id` got no reply in time (the Jingle layer
    /// ends the session next). Every data IQ of the session whose own reply timer ran
    /// out by now fails with `Timeout`; the later ones fail with `SessionEnded` when the
    /// session ends.
    fn oa_timed_out(&mut self, id: CustomId) {
        let Some(c) = self.sessions.get(&id) else {
            return;
        };
        let now = self.timeout_now;
        let mut expired: Vec<String> = c
            .oa_in_flight
            .values()
            .filter(|d| d.deadline.zip(now).is_some_and(|(d, now)| d <= now))
            .map(|d| d.iq.clone())
            .collect();
        if expired.is_empty() {
            // Cannot happen while our timers mirror the Jingle layer's; the oldest
            // transmitted one is the best guess.
            expired.extend(
                c.oa_in_flight
                    .values()
                    .filter_map(|d| d.deadline.map(|t| (t, d)))
                    .min_by_key(|(t, _)| *t)
                    .map(|(_, d)| d.iq.clone()),
            );
        }
        for iq in expired {
            self.oa_answered(&iq, Err(SendFailure::Signaling(RequestFailure::Timeout)));
        }
    }

    /// Final state: every pending send fails, the transport closes.
    fn finish(&mut self, id: CustomId) {
        let Some(c) = self.sessions.get_mut(&id) else {
            return;
        };
        if c.state == CustomState::Ended {
            return;
        }
        let mut failed: Vec<SendId> = Vec::new();
        for (send, d) in std::mem::take(&mut c.oa_in_flight) {
            self.data_iqs.remove(&d.iq);
            failed.push(send);
        }
        let mut transport: Vec<SendId> = c.transport_sends.drain().collect();
        transport.sort();
        failed.extend(transport);
        let mode = c.mode;
        let members: Vec<String> = std::mem::take(&mut c.members).into_iter().collect();
        for send in failed {
            self.events.push_back(Event::SendResult {
                id,
                send,
                result: Err(SendFailure::SessionEnded),
            });
        }
        for m in members {
            if let Ok(peer) = Jid::new(&m) {
                self.events.push_back(Event::ParticipantLeft {
                    id,
                    peer,
                    ejected: false,
                });
            }
        }
        if mode != Mode::OfferAnswer {
            self.actions.push_back(TransportAction::Close { id });
        }
        self.set_state(id, CustomState::Ended);
    }

    /// Turns the Jingle manager's events into custom-session events.
    fn pump(&mut self) {
        while let Some(ev) = self.jingle.poll_event() {
            self.on_jingle(ev);
        }
    }

    fn on_jingle(&mut self, ev: jingle::Event) {
        match ev {
            jingle::Event::Incoming { sid, peer, .. } => self.on_incoming(sid.into(), peer),
            jingle::Event::Received { sid, jingle } => {
                let Some(&id) = self.by_sid.get(sid.as_str()) else {
                    return;
                };
                match jingle.action {
                    Action::SessionAccept => self.on_accepted(id, &sid),
                    Action::SessionInfo => {
                        if let Some(Some(Ok(data))) = jingle.info.as_deref().map(parse_data_info)
                            && let Some(from) = self.peer_of(id, &sid)
                        {
                            self.events
                                .push_back(Event::DataReceived { id, from, data });
                        }
                    }
                    _ => {}
                }
            }
            jingle::Event::RequestAcknowledged { sid, action } => {
                let Some(&id) = self.by_sid.get(sid.as_str()) else {
                    return;
                };
                match action {
                    Action::SessionInfo => {
                        if let Some(iq) = self.replying_for(id) {
                            self.oa_answered(&iq, Ok(()));
                        }
                    }
                    Action::SessionAccept => self.on_accept_acknowledged(id, &sid),
                    _ => {}
                }
            }
            jingle::Event::RequestFailed {
                sid,
                action,
                failure,
            } => {
                let Some(&id) = self.by_sid.get(sid.as_str()) else {
                    return;
                };
                if action == Action::SessionInfo {
                    match failure {
                        // The session is over: its `Terminated` follows, and `finish`
                        // fails every data IQ still in flight.
                        RequestFailure::SessionEnded => {}
                        RequestFailure::Timeout => self.oa_timed_out(id),
                        f => {
                            if let Some(iq) = self.replying_for(id) {
                                self.oa_answered(&iq, Err(SendFailure::Signaling(f)));
                            }
                        }
                    }
                }
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

    /// The data IQ of session `id` whose reply is being handled, if that is what
    /// produced the Jingle event at hand.
    fn replying_for(&mut self, id: CustomId) -> Option<String> {
        let iq = self.replying.as_ref()?;
        if self.data_iqs.get(iq).is_some_and(|(c, _)| *c == id) {
            self.replying.take()
        } else {
            None
        }
    }

    fn peer_of(&self, id: CustomId, sid: &str) -> Option<Jid> {
        self.sessions
            .get(&id)?
            .peers
            .iter()
            .find(|p| p.sid == sid)
            .map(|p| p.jid.clone())
    }

    fn on_incoming(&mut self, sid: String, peer: Jid) {
        let offer = self.offers.remove(&sid);
        let desc = match offer {
            Some(Ok(d)) => d,
            Some(Err(())) => {
                // XEP-0166 §7.4: failed-application — the description is ours but
                // unusable.
                let _ = self.jingle.end(
                    &sid,
                    Some(Reason::new(ReasonCondition::FailedApplication)),
                    false,
                );
                return;
            }
            None => return,
        };
        if !self.capabilities.contains(&desc.uuid) {
            // XEP-0166 §7.4: unsupported-applications — a capability we never
            // announced.
            let _ = self.jingle.end(
                &sid,
                Some(Reason::new(ReasonCondition::UnsupportedApplications)),
                false,
            );
            return;
        }
        let id = self.new_id();
        let mut c = Custom::new(Role::Invitee, desc.uuid, desc.mode);
        c.name = desc.name.clone();
        c.transport = desc.transport;
        c.state = CustomState::ReceivedProposal;
        c.peers.push(Peer {
            jid: peer.clone(),
            sid: sid.clone(),
            state: PeerState::Invited,
        });
        self.sessions.insert(id, c);
        self.by_sid.insert(sid, id);
        self.events.push_back(Event::NewSession {
            id,
            from: peer,
            uuid: desc.uuid,
            mode: desc.mode,
            name: desc.name,
        });
        self.events.push_back(Event::StateChanged {
            id,
            state: CustomState::ReceivedProposal,
        });
    }

    /// Owner: an invitee's session-accept.
    fn on_accepted(&mut self, id: CustomId, sid: &str) {
        let Some(c) = self.sessions.get_mut(&id) else {
            return;
        };
        let Some(p) = c.peers.iter_mut().find(|p| p.sid == sid) else {
            return;
        };
        if p.state != PeerState::Invited {
            return;
        }
        p.state = PeerState::Joined;
        let peer = p.jid.clone();
        let mode = c.mode;
        self.events.push_back(Event::InviteResult {
            id,
            peer: peer.clone(),
            result: Ok(()),
        });
        // Message mode: the participant has joined once the host admits it
        // (`handle_member`); the other modes have no transport roster.
        if mode != Mode::Message {
            self.events.push_back(Event::ParticipantJoined { id, peer });
        }
        self.set_state(id, CustomState::Online);
    }

    /// Invitee: our session-accept reached the owner.
    fn on_accept_acknowledged(&mut self, id: CustomId, sid: &str) {
        let me = self.jid().to_string();
        let Some(c) = self.sessions.get_mut(&id) else {
            return;
        };
        let Some(p) = c.peers.iter_mut().find(|p| p.sid == sid) else {
            return;
        };
        p.state = PeerState::Joined;
        let peer = p.jid.clone();
        if c.mode == Mode::Message {
            if let Some(t) = &c.transport {
                self.actions.push_back(TransportAction::Join {
                    id,
                    addr: t.addr,
                    name: me,
                });
            }
            // The owner hosts the message session: it is present from the start.
            c.members.insert(peer.to_string());
        }
        self.events.push_back(Event::ParticipantJoined { id, peer });
        self.set_state(id, CustomState::Online);
    }

    fn on_terminated(&mut self, sid: &str, reason: Option<Reason>, by_peer: bool) {
        self.offers.remove(sid);
        let Some(id) = self.by_sid.remove(sid) else {
            return;
        };
        let Some(c) = self.sessions.get_mut(&id) else {
            return;
        };
        let Some(pos) = c.peers.iter().position(|p| p.sid == sid) else {
            return;
        };
        let p = c.peers.remove(pos);
        let role = c.role;
        let mode = c.mode;
        if c.state == CustomState::Ended {
            return;
        }
        match p.state {
            PeerState::Invited if role == Role::Owner => {
                let cond = reason.as_ref().map(|r| r.condition);
                let result = match cond {
                    Some(ReasonCondition::Decline) if by_peer => InviteFailure::Rejected,
                    Some(ReasonCondition::Cancel | ReasonCondition::Success) if !by_peer => {
                        InviteFailure::Cancelled
                    }
                    _ => InviteFailure::Failed(reason),
                };
                self.events.push_back(Event::InviteResult {
                    id,
                    peer: p.jid,
                    result: Err(result),
                });
            }
            PeerState::Joined if role == Role::Owner && mode != Mode::Message => {
                self.events.push_back(Event::ParticipantLeft {
                    id,
                    peer: p.jid,
                    ejected: false,
                });
            }
            _ => {}
        }
        let c = self.sessions.get(&id);
        // The invitee's session is its one Jingle session; the owner's lasts while
        // anyone is invited or joined.
        if role == Role::Invitee || c.is_some_and(|c| c.peers.is_empty()) {
            self.finish(id);
        }
    }
}

impl Custom {
    fn new(role: Role, uuid: CapabilityUuid, mode: Mode) -> Custom {
        Custom {
            role,
            uuid,
            mode,
            name: None,
            state: CustomState::Created,
            transport: None,
            peers: Vec::new(),
            members: BTreeSet::new(),
            oa_in_flight: BTreeMap::new(),
            transport_sends: HashSet::new(),
        }
    }
}

/// AIMCC Technote 8, "Which IAccCustomSession methods are applicable in which modes?":
/// refuses `call` unless the session's mode is one of `modes`.
fn applies(c: &Custom, call: &'static str, modes: &[Mode]) -> Result<(), CustomError> {
    if modes.contains(&c.mode) {
        Ok(())
    } else {
        Err(CustomError::NotApplicable { call, mode: c.mode })
    }
}

fn created(c: &Custom, call: &'static str) -> Result<(), CustomError> {
    if c.state == CustomState::Created && c.role == Role::Owner {
        Ok(())
    } else {
        Err(CustomError::InvalidState {
            call,
            state: c.state,
        })
    }
}

/// Registers the custom-session [`CustomHandler`] for [`NS`] with a Jingle manager.
pub fn register(manager: &mut SessionManager) {
    manager.register(NS, |_| Box::new(CustomHandler::default()));
}
