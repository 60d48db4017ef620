//! # huddle-session: the layer applications program against
//!
//! Jingle sessions and their manager (XEP-0166, jingle.js's session model, spec-correct
//! tie-breaking), custom sessions (AIMCC), multi-stream sessions (Elastos Carrier) and
//! MSRP sessions (chat, file transfer, byte streams), all carried over any signaling
//! channel that moves Jingle IQs.
//!
//! The protocol logic is sans-IO: inputs carry `now`, commands only queue work, and
//! outputs (IQs to send, events, the next timeout) are polled. Async APIs drive that
//! logic over `huddle-transport`. What this crate does not do: wire encoding (that is
//! `huddle-jingle` and `huddle-msrp`) or socket I/O of its own (`huddle-transport`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]
pub mod carrier;
pub mod custom;
pub mod harness;
pub mod jingle;
pub mod msrp;
pub mod signaling;
