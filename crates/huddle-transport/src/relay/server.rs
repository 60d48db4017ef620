//! An MSRP relay (RFC 4976) a user can deploy.
//!
//! - AUTH with HTTP Digest (MD5, `qop=auth`) against a [`CredentialStore`]; nonces are
//!   per connection, expire, and each nonce count is accepted once (no replay).
//! - Use-Path URIs whose session-id carries about 190 bits from the OS CSPRNG; Expires
//!   bounded, with 423 and Min-Expires/Max-Expires outside the bounds.
//! - SEND and REPORT forwarded with RFC 4976 §6.4 path rewriting (the relay removes
//!   itself from To-Path and puts itself at the front of From-Path); hop-by-hop 200s
//!   for SEND honouring Failure-Report; 481 for unknown sessions, 403 for traffic that
//!   neither comes from a session's client nor goes to it. When both Use-Paths are this
//!   relay's, the second hop is taken in memory.
//! - Large chunks are streamed in bounded memory: the decoder hands out pieces of
//!   [`huddle_msrp::Limits::max_body_in_memory`] bytes and each is forwarded at once as a
//!   chunk of its own (RFC 4976 §6.4.1 lets a relay re-chunk) with a correct Byte-Range.
//! - Flow control instead of loss: a full next hop pauses reading from its senders; a
//!   failed next hop (error response, timeout, lost connection) turns every transaction
//!   it held into a failure REPORT to the sender when Failure-Report asks for it.
//! - Limits on connections and sessions, slow and idle connections closed, TLS, graceful
//!   shutdown, and [`RelayMetrics`].
//!
//! The decisions live in the sans-IO [`RelayCore`] (frames in from connection ids,
//! frames out to connection ids, timers as data); [`RelayServer`] is its tokio driver.

mod core;
mod credentials;
mod driver;
mod metrics;

pub use self::core::{CloseReason, ConnId, Output, RelayConfig, RelayCore};
pub use self::credentials::{CredentialStore, CredentialsError};
pub use self::driver::{ListenerConfig, RelayHandle, RelayServer, ServerConfig};
pub use self::metrics::RelayMetrics;
