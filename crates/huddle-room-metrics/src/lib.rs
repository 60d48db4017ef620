//! Mozilla Loop rooms, both sides of the status contract.
//!
//! - [`tracker`]: the client's room-state machine (sans-IO): session events in, the status
//!   updates the real Loop client posts out.
//! - [`adapter`]: feeds the tracker from huddle-session's Jingle and Carrier events.
//! - [`reporter`]: an HTTP client that joins a room, refreshes the participation, posts
//!   status updates and leaves, with Hawk or Basic auth; failures are reported, never block.
//! - [`server`]: a rooms endpoint compatible with loop-server for the participation API,
//!   with Hawk and Basic auth, that keeps every status update and aggregates per-room
//!   metrics ([`metrics`]) exported in Prometheus text format and as JSON.
//! - [`store`]: the storage trait and its two backends (embedded redb file, Redis).
//! - [`conformance`]: checks against the recorded behaviour of the real client, of
//!   loop-server and of Hawk (used by the tests and by `cargo xtask conformance`).
//!
//! What it deliberately does not do: talk to TokBox (join answers carry a session id and
//! token minted here), serve Loop's call-URL, FxA or push endpoints, or read a clock inside
//! the tracker, the metrics fold or the stores (time is passed in).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod adapter;
pub mod api_error;
pub mod conformance;
pub mod hawk_auth;
pub mod metrics;
pub mod reporter;
pub mod server;
pub mod store;
pub mod tracker;
