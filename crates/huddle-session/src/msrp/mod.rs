//! MSRP sessions (RFC 4975 §5–§7, msrplib's `MSRPSession`, sipsimple's `MSRPChat`).
//!
//! - [`session::MsrpSession`]: the sans-IO session core: transactions with response
//!   timeouts, incoming path checks, responses and success REPORTs, reassembly, and one
//!   outcome (delivered or failed) for every message sent.
//! - [`chat::MsrpChat`]: instant messaging on top (CPIM wrapping per accept-types,
//!   messages queued before start, sipsimple's notifications).

pub mod chat;
pub mod driver;
pub mod file;
pub mod jingle;
pub mod negotiate;
pub mod session;
pub mod stream;

pub use chat::{ChatEvent, ChatMessage, MsrpChat};
pub use session::{
    Confirmation, MessageId, MessageOutcome, MsrpConfig, MsrpEvent, MsrpSession, SendOptions,
};
