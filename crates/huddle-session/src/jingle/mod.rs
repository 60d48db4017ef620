//! Jingle sessions and their manager (XEP-0166; the seed's jingle-session / jingle.js
//! model, spec-correct).
//!
//! - [`SessionManager`]: the sans-IO state machine for every session of one local JID.
//!   Inbound IQs go to `handle_iq`; each session has a FIFO of inbound actions processed
//!   one at a time, and **every IQ-set gets exactly one reply** (a result or an error),
//!   including those still queued when the session ends.
//! - [`ApplicationHandler`]: what an application format does with the actions that pass
//!   the protocol checks; registered per description namespace, [`BaseHandler`] (the
//!   seed's base session) otherwise.
//! - Tie-breaking of crossed actions per XEP-0166 §7.2.16 ([`TieBreakRule`]), with a
//!   compatibility rule for jingle.js/stanza peers.
//!
//! See `docs/sessions.md` for the API with examples and `docs/jingle.md` for where
//! huddle differs from jingle.js on purpose.

mod handler;
pub(crate) mod ids;
mod manager;
mod session;
mod tiebreak;

pub use handler::{ApplicationHandler, BaseHandler, HandlerFactory, Verdict, base_verdict};
pub use huddle_jingle::Sid;
pub use manager::{
    Config, DEFAULT_REPLY_TIMEOUT, Event, RequestFailure, SessionError, SessionManager,
};
pub use session::{ConnectionState, Session, SessionState, TIE_BREAK_ACTIONS, is_tie_break_action};
pub use tiebreak::{TieBreakRule, functionally_equivalent};
