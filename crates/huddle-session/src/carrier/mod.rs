//! Multi-stream sessions (Elastos Carrier's sessions and streams).
//!
//! - [`CarrierManager`]: the sans-IO session manager. `new_session(peer)`,
//!   `add_stream(type, options)`, `request`, `reply_request(status, reason)`,
//!   `start(remote description)`; per-stream state events in Carrier's order
//!   (initialized, transport-ready, connecting, connected; deactivated, closed, failed).
//!   The offer and answer travel in Jingle contents with the [`NS_CARRIER`] description and
//!   [`NS_CARRIER_TCP`] transport, through a Jingle [`SessionManager`](crate::jingle::SessionManager)
//!   the Carrier manager owns and registers its handler with.
//! - [`driver`]: the tokio layer. Each stream is one loopback (or LAN) TCP connection;
//!   a plain stream carries length-prefixed messages (`write` / received data), a
//!   multiplexed stream carries huddle-transport's channel mux (open/accept/refuse,
//!   data, close with reason), on which port forwarding and file transfer run.
//!
//! Unreliable streams are **best-effort over the same TCP mechanism**: the flag is
//! negotiated and reported, but huddle does not carry them over UDP, so in practice
//! their data arrives reliably and in order.

mod core;
pub mod driver;

pub use self::core::{
    Candidate, CarrierError, CarrierEvent, CarrierManager, NS_CARRIER, NS_CARRIER_TCP,
    RemoteDescription, RemoteStream, SessionId, StreamId, StreamOptions, StreamState, StreamType,
    decode_description,
};
