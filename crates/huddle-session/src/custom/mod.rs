//! Custom sessions (AIMCC Technote 8): application-defined secondary sessions
//! identified by a capability UUID, in one of three modes:
//!
//! - **Offer-Answer**: two participants; data travels through the signaling channel
//!   (Jingle session-info IQs), each send acknowledged by the peer.
//! - **Streams**: two participants; an authenticated direct TCP stream
//!   (`huddle_transport::streams`), its per-session secret exchanged over signaling.
//! - **Message**: two or more participants; messages of at most 64 KiB to one
//!   participant or to all, over `huddle_transport::message` (participant list,
//!   framing and keep-alives handled there), the owner hosting.
//!
//! The session is proposed and answered with Jingle (XEP-0166) using huddle's
//! application namespace [`NS`] (`urn:huddle:custom:0`). [`CustomSessions`] is the
//! sans-IO state machine over a Jingle [`SessionManager`](crate::jingle::SessionManager);
//! [`CustomEndpoint`] drives it with tokio over a [`Signaling`](crate::signaling::Signaling)
//! channel and real sockets. What this module does not do: choose data formats (the
//! application's), or open Streams/Message connections without a proposal.

mod core;
mod description;
mod driver;

pub use self::core::{
    CustomError, CustomId, CustomSessions, CustomState, DEFAULT_PROPOSAL_TIMEOUT, Event,
    InviteFailure, Role, SendFailure, SendId, TransportAction, register,
};
pub use self::description::{
    CONTENT_NAME, CapabilityUuid, CustomDescription, CustomHandler, DescriptionError, Mode, NS,
    TransportInfo, UuidError, data_info, parse_data_info,
};
pub use self::driver::{CustomEndpoint, EndpointConfig, EndpointError};
