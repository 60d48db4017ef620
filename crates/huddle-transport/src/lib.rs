//! # huddle-transport: the tokio layer
//!
//! Sockets, TLS and time for huddle's protocols. This crate owns I/O and makes no
//! protocol decision that belongs in a sans-IO core: framing and state machines live in
//! `huddle-msrp` (the MSRP codec) or in this crate's own sans-IO modules (the channel
//! multiplexer, message mode framing), and the tokio drivers here only move bytes and
//! fire timers.
//!
//! What it deliberately does not do: Jingle, session negotiation, or anything that needs
//! to know why a connection exists (that is `huddle-session`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod codec;
pub mod digest;
pub mod message;
pub mod msrp;
pub mod mux;
pub mod relay;
pub mod streams;
