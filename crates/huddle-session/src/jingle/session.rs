//! One Jingle session as the manager tracks it: identity, protocol state, connection
//! state and the fields tie-breaking needs (XEP-0166 §5.1, §7.2.16; seed 001).

use std::sync::Arc;

use huddle_jingle::{Action, Jid};

use huddle_jingle::Sid;

/// The overall session state (XEP-0166 §5.1: PENDING, ACTIVE, ENDED), plus `Starting`
/// for a session that exists locally but has not been initiated yet (seed 001).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// Created, no session-initiate sent or processed yet.
    Starting,
    /// session-initiate sent or acknowledged, not yet accepted.
    Pending,
    /// session-accept sent or received.
    Active,
    /// session-terminate sent or received (final).
    Ended,
}

impl SessionState {
    /// The seed's name for the state (`starting`, `pending`, `active`, `ended`).
    pub const fn as_str(self) -> &'static str {
        match self {
            SessionState::Starting => "starting",
            SessionState::Pending => "pending",
            SessionState::Active => "active",
            SessionState::Ended => "ended",
        }
    }
}

/// The state of the session's transport connection, as the application reports it
/// (seed 001: starting, connecting, connected, disconnected, interrupted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    /// Nothing attempted yet.
    Starting,
    /// Connectivity checks in progress.
    Connecting,
    /// Data can flow.
    Connected,
    /// The connection is gone.
    Disconnected,
    /// The connection broke and may come back.
    Interrupted,
}

impl ConnectionState {
    /// The seed's name for the state.
    pub const fn as_str(self) -> &'static str {
        match self {
            ConnectionState::Starting => "starting",
            ConnectionState::Connecting => "connecting",
            ConnectionState::Connected => "connected",
            ConnectionState::Disconnected => "disconnected",
            ConnectionState::Interrupted => "interrupted",
        }
    }
}

/// The actions whose crossing with the same action from the peer is resolved by
/// tie-breaking (XEP-0166 §7.2.16, "existing session"): the negotiation actions, the
/// ones the seed tracks as `pendingAction`.
pub const TIE_BREAK_ACTIONS: &[Action] = &[
    Action::SessionInitiate,
    Action::SessionAccept,
    Action::ContentAdd,
    Action::ContentRemove,
    Action::ContentReject,
    Action::ContentAccept,
    Action::ContentModify,
    Action::TransportReplace,
    Action::TransportReject,
    Action::TransportAccept,
];

/// Whether `action` takes part in tie-breaking (see [`TIE_BREAK_ACTIONS`]).
pub fn is_tie_break_action(action: Action) -> bool {
    TIE_BREAK_ACTIONS.contains(&action)
}

/// A read-only view of one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub(crate) sid: Sid,
    pub(crate) peer: Jid,
    pub(crate) initiator: bool,
    pub(crate) state: SessionState,
    pub(crate) connection_state: ConnectionState,
    pub(crate) pending_action: Option<Action>,
    /// Shared with [`Event::Incoming`](super::Event::Incoming).
    pub(crate) description_types: Arc<[String]>,
    pub(crate) transport_types: Arc<[String]>,
}

impl Session {
    pub(crate) fn new(
        sid: Sid,
        peer: Jid,
        initiator: bool,
        (description_types, transport_types): (Arc<[String]>, Arc<[String]>),
    ) -> Session {
        Session {
            sid,
            peer,
            initiator,
            state: SessionState::Starting,
            connection_state: ConnectionState::Starting,
            pending_action: None,
            description_types,
            transport_types,
        }
    }

    /// The session id.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// The session id, shared (a clone is a reference count).
    pub fn shared_sid(&self) -> &Sid {
        &self.sid
    }

    /// The other party (a full JID).
    pub fn peer(&self) -> &Jid {
        &self.peer
    }

    /// Whether we initiated the session.
    pub fn is_initiator(&self) -> bool {
        self.initiator
    }

    /// The overall state.
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// The connection state the application last reported.
    pub fn connection_state(&self) -> ConnectionState {
        self.connection_state
    }

    /// The tie-breakable action we sent most recently and whose reply has not arrived
    /// yet (the seed's `pendingAction`, which huddle clears when the reply comes).
    pub fn pending_action(&self) -> Option<Action> {
        self.pending_action
    }

    /// The application formats (description namespaces) of the session-initiate, in
    /// content order: what crossed session-initiates are compared on (the seed's
    /// `pendingDescriptionTypes`).
    pub fn description_types(&self) -> &[String] {
        &self.description_types
    }

    /// The transport methods (transport namespaces) of the session-initiate.
    pub fn transport_types(&self) -> &[String] {
        &self.transport_types
    }

    /// `state() == Starting`.
    pub fn is_starting(&self) -> bool {
        self.state == SessionState::Starting
    }

    /// `state() == Pending`.
    pub fn is_pending(&self) -> bool {
        self.state == SessionState::Pending
    }

    /// `state() == Active`.
    pub fn is_active(&self) -> bool {
        self.state == SessionState::Active
    }

    /// `state() == Ended`.
    pub fn is_ended(&self) -> bool {
        self.state == SessionState::Ended
    }
}
